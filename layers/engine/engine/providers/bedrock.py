"""Amazon Bedrock as the model, through the Converse API (``ConverseStream``) and the function's IAM role.

boto3 is synchronous, so each stream is read by its own daemon thread that hands the parsed events to the
event loop through an ``asyncio.Queue`` (a thread per stream, not ``asyncio.to_thread``: the default executor
has a few dozen workers and a long stream would hold one for its whole length). Closing the generator (the
client went away, the task was cancelled) closes the HTTP stream and stops the thread. boto3 is imported and
the client created on first use, in that thread, so importing this module does no I/O.

How a :class:`ChatRequest` (Chat Completions shape) becomes a Converse request:

- ``system`` (and ``developer``) messages → ``system`` text blocks, wherever they were in the conversation.
- ``user``/``assistant`` messages → ``messages`` of content blocks; consecutive messages of the same role are
  merged (Bedrock requires user/assistant alternation) and blank text blocks are dropped (Bedrock rejects them).
- images: ``data:`` URLs → ``image`` blocks (png, jpeg, gif, webp). Bedrock cannot fetch a URL, so an
  ``http(s)`` image is an ``invalid_prompt`` error telling the caller to send it inline; it is not dropped,
  because a model answering about an image it never saw is worse than a clear 400.
- files with ``file_data`` (pdf, csv, doc(x), xls(x), html, txt, md) → ``document`` blocks; ``file_id`` is an
  ``invalid_prompt`` error (there is no Files API here).
- assistant ``tool_calls`` → ``toolUse`` blocks (``input`` is the parsed arguments; arguments that are not a JSON
  object are sent as ``{"raw": "<arguments>"}``); ``tool`` messages → ``toolResult`` blocks in a user message,
  consecutive results in one message, ahead of any other content of that message. An empty result is sent as
  ``(no output)``.
- tools → ``toolConfig.tools[].toolSpec``. Bedrock tool names must match ``[a-zA-Z0-9_-]{1,64}``; other names
  (``.``/``:``, longer than 64) get a stable alias that is mapped back in the streamed calls. ``strict`` is not
  forwarded (only some models accept it).
- ``tool_choice``: ``required`` → ``{any: {}}``, a named function → ``{tool: {name}}``, ``auto``/unset → no
  ``toolChoice`` (``auto`` is Bedrock's default, and some models reject an explicit one). Bedrock has no
  ``none``: ``none`` (like a turn without tools) sends no ``toolConfig`` at all, so the model cannot call a
  tool; as Bedrock refuses ``toolUse``/``toolResult`` blocks without a ``toolConfig``, earlier calls and results
  are then written into the conversation as text.
- ``temperature``/``top_p``/``max_output_tokens`` → ``inferenceConfig``; a ``json_schema`` ``response_format``
  → ``outputConfig.textFormat`` (``json_object`` has no Converse equivalent and is not forwarded).
- ``reasoning_effort``, ``parallel_tool_calls`` and ``user`` are not forwarded: Converse has no switch for them
  that every model accepts (reasoning settings are model-specific ``additionalModelRequestFields``). Reasoning
  the model streams (``reasoningContent``) is passed on as ``ReasoningDelta``.
- ``service_tier`` → ``serviceTier`` (``priority``/``fast``/``ultrafast`` → ``priority``, ``flex``, ``default``,
  ``scale`` → ``reserved``; ``auto`` sends none); the tier Bedrock reports (``metadata.serviceTier``) is echoed.
  ``safety_identifier`` → ``requestMetadata`` (``safety_identifier``, for invocation-log filtering; dropped if
  it has characters Bedrock refuses there). ``prompt_cache_key`` has no Converse equivalent (Bedrock caches at
  ``cachePoint`` blocks) and is ignored, as are ``logprobs`` (Converse returns none).

Stream events: ``contentBlockStart.toolUse`` → ``ToolCallDelta`` (id, name; ``index`` counts the response's
tool calls), ``contentBlockDelta`` ``text``/``toolUse.input``/``reasoningContent.text`` → ``TextDelta``/
``ToolCallDelta`` arguments/``ReasoningDelta``, ``messageStop.stopReason`` → ``Finish`` (end_turn/stop_sequence
→ stop, max_tokens/model_context_window_exceeded → length, tool_use → tool_calls, content_filtered/
guardrail_intervened → content_filter; malformed_* is an error), ``metadata.usage`` → ``Usage`` (Bedrock's
``inputTokens`` excludes cache reads and writes; ``input_tokens`` here includes them, as on OpenAI).

Errors: ThrottlingException/ServiceQuotaExceededException → ``rate_limit_exceeded``; ValidationException,
AccessDeniedException, ResourceNotFoundException → ``invalid_prompt``; ModelTimeout/ServiceUnavailable/
InternalServer/ModelStreamError/ModelError/ModelNotReady exceptions (before or inside the stream) → ``server_error``;
timeouts → ``server_error`` "timed out"; anything else → ``server_error`` with the exception's type name only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from pydantic_core import from_json, to_json

from engine.observability import logger
from engine.providers.base import (
    ChatRequest,
    Finish,
    ProviderError,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from engine.settings import Settings

__all__ = ["BedrockProvider", "converse_request"]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_.:-]{1,64}$")
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_DOCUMENT_EXTENSIONS = {fmt: fmt for fmt in _DOCUMENT_FORMATS.values()} | {"htm": "html", "markdown": "md"}
_DOCUMENT_NAME_CHAR = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")
_EMPTY_RESULT = "(no output)"
# Responses service_tier -> Converse serviceTier.type (auto: Bedrock's default, nothing sent)
_SERVICE_TIERS = {
    "default": "default",
    "flex": "flex",
    "priority": "priority",
    "fast": "priority",
    "ultrafast": "priority",
    "scale": "reserved",
}
_REPORTED_TIERS = {"default": "default", "flex": "flex", "priority": "priority", "reserved": "scale"}
_METADATA_VALUE = re.compile(r"^[a-zA-Z0-9\s:_@$#=/+,.-]{1,256}$")

_FINISH: dict[str, Any] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
_MALFORMED = {
    "malformed_model_output": "Amazon Bedrock stopped: the model's output was malformed.",
    "malformed_tool_use": "Amazon Bedrock stopped: the model produced a malformed tool call.",
}
# Bedrock error code -> (ResponseError code, HTTP status when the error arrived inside the stream)
_ERRORS: dict[str, tuple[str, int]] = {
    "ThrottlingException": ("rate_limit_exceeded", 429),
    "ServiceQuotaExceededException": ("rate_limit_exceeded", 429),
    "ValidationException": ("invalid_prompt", 400),
    "AccessDeniedException": ("invalid_prompt", 403),
    "ResourceNotFoundException": ("invalid_prompt", 404),
    "ModelTimeoutException": ("server_error", 408),
    "ServiceUnavailableException": ("server_error", 503),
    "InternalServerException": ("server_error", 500),
    "ModelStreamErrorException": ("server_error", 424),
    "ModelErrorException": ("server_error", 424),
    "ModelNotReadyException": ("server_error", 429),
}


def _invalid(message: str) -> ProviderError:
    return ProviderError(message, code="invalid_prompt", status=400)


# ---------------------------------------------------------------------------------------------------------
# ChatRequest -> Converse request


class _ToolNames:
    """The names Bedrock sees (``[a-zA-Z0-9_-]{1,64}``) for the engine's tool names, and back."""

    def __init__(self) -> None:
        self._to_bedrock: dict[str, str] = {}
        self._to_engine: dict[str, str] = {}

    def bedrock(self, name: str) -> str:
        alias = self._to_bedrock.get(name)
        if alias is None:
            alias = name
            if not _TOOL_NAME.match(name) or name in self._to_engine:
                digest = hashlib.sha256(name.encode()).hexdigest()[:8]
                alias = f"{_TOOL_NAME_CHAR.sub('_', name)[:55]}_{digest}"
            self._to_bedrock[name] = alias
            self._to_engine[alias] = name
        return alias

    def engine(self, alias: str | None) -> str | None:
        return None if alias is None else self._to_engine.get(alias, alias)


def _tool_use_id(call_id: Any) -> str:
    """A ``toolUseId`` Bedrock accepts; the same for a call and its result."""
    text = str(call_id or "")
    if _TOOL_USE_ID.match(text):
        return text
    return "call_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _data_url(url: str) -> tuple[str, bytes]:
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise _invalid("A data URL must look like data:<media type>;base64,<data>.")
    params = [p.strip().lower() for p in header.split(";")]
    try:
        if "base64" in params[1:]:
            data = base64.b64decode("".join(payload.split()), validate=True)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise _invalid("A data URL's base64 payload could not be decoded.") from None
    if not data:
        raise _invalid("A data URL has no data.")
    return params[0], data


def _image(url: str) -> dict[str, Any]:
    if not url.startswith("data:"):
        raise _invalid(
            "Amazon Bedrock cannot fetch images from a URL: send the image inline as a base64 data URL "
            "(data:image/png;base64,...)."
        )
    media_type, data = _data_url(url)
    fmt = _IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise _invalid(f"Amazon Bedrock accepts PNG, JPEG, GIF and WebP images, not {media_type or 'this data'}.")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


class _Documents:
    """``document`` blocks; Bedrock wants a restricted, unique name for each document in a request."""

    def __init__(self) -> None:
        self._names: set[str] = set()

    def _name(self, filename: str) -> str:
        stem = filename.rsplit(".", 1)[0] if "." in filename else filename
        base = " ".join(_DOCUMENT_NAME_CHAR.sub(" ", stem).split())[:180] or "document"
        name, n = base, 1
        while name in self._names:
            n += 1
            name = f"{base} ({n})"
        self._names.add(name)
        return name

    def block(self, file: dict[str, Any]) -> dict[str, Any]:
        file_data = file.get("file_data")
        filename = str(file.get("filename") or "")
        if not file_data:
            raise _invalid("Amazon Bedrock needs a file's content: send input_file with file_data, not file_id.")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if str(file_data).startswith("data:"):
            media_type, data = _data_url(str(file_data))
            fmt = _DOCUMENT_FORMATS.get(media_type) or _DOCUMENT_EXTENSIONS.get(extension)
        else:
            try:
                data = base64.b64decode("".join(str(file_data).split()), validate=True)
            except (binascii.Error, ValueError):
                raise _invalid("An input_file's file_data could not be decoded as base64.") from None
            fmt = _DOCUMENT_EXTENSIONS.get(extension)
        if fmt is None or not data:
            raise _invalid("Amazon Bedrock accepts PDF, CSV, DOC, DOCX, XLS, XLSX, HTML, TXT and MD files.")
        return {"document": {"format": fmt, "name": self._name(filename), "source": {"bytes": data}}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _blocks(content: Any, documents: _Documents) -> list[dict[str, Any]]:
    """Chat message content → Converse content blocks (blank text dropped)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if str(part.get("text") or "").strip():
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            blocks.append(_image(str(image.get("url") if isinstance(image, dict) else image or "")))
        elif kind == "file":
            blocks.append(documents.block(part.get("file") or {}))
        else:
            raise _invalid(f"Amazon Bedrock cannot take {kind!r} message content.")
    return blocks


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    text = str(arguments or "")
    if not text.strip():
        return {}
    try:
        parsed = from_json(text)
    except ValueError:
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"raw": text}


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _tool_config(request: ChatRequest, names: _ToolNames) -> dict[str, Any] | None:
    if not request.tools or request.tool_choice == "none":
        return None
    specs: list[dict[str, Any]] = []
    for tool in request.tools:
        function: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        spec: dict[str, Any] = {
            "name": names.bedrock(str(function["name"])),
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if function.get("description"):
            spec["description"] = str(function["description"])
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    choice = request.tool_choice
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if name:
            config["toolChoice"] = {"tool": {"name": names.bedrock(str(name))}}
    return config


def _output_config(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema: dict[str, Any] = {"schema": to_json(spec.get("schema") or {"type": "object"}).decode()}
    if spec.get("name"):
        schema["name"] = str(spec["name"])
    if spec.get("description"):
        schema["description"] = str(spec["description"])
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}


def _converse(request: ChatRequest) -> tuple[dict[str, Any], _ToolNames]:
    names = _ToolNames()
    tool_config = _tool_config(request, names)
    documents = _Documents()
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    called: dict[str, str] = {}  # call id -> tool name, for results written as text
    for message in request.messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in content):
                raise _invalid("Amazon Bedrock takes only text in system and developer messages.")
            text = _text_of(content)
            if text.strip():
                system.append({"text": text})
        elif role == "user":
            _append(turns, "user", _blocks(content, documents))
        elif role == "assistant":
            blocks = _blocks(content, documents)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                name, arguments = str(function.get("name") or ""), function.get("arguments")
                called[str(call.get("id"))] = name
                if tool_config is None:
                    blocks.append({"text": f"[Called tool {name} with arguments: {arguments or '{}'}]"})
                else:
                    use = {"toolUseId": _tool_use_id(call.get("id")), "name": names.bedrock(name)}
                    blocks.append({"toolUse": use | {"input": _tool_input(arguments)}})
            _append(turns, "assistant", blocks)
        elif role == "tool":
            result = _blocks(content, documents) or [{"text": _EMPTY_RESULT}]
            call_id = message.get("tool_call_id")
            if tool_config is None:
                name = called.get(str(call_id), "a tool")
                _append(turns, "user", [{"text": f"[Result of {name}]"}, *result])
            else:
                _append(turns, "user", [{"toolResult": {"toolUseId": _tool_use_id(call_id), "content": result}}])
        else:
            raise _invalid(f"Amazon Bedrock cannot take a message with role {role!r}.")
    for turn in turns:  # tool results lead their user message (Claude requires it)
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: "toolResult" not in block)
    kwargs: dict[str, Any] = {"modelId": request.model, "messages": turns}
    if system:
        kwargs["system"] = system
    inference = {
        "maxTokens": request.max_output_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
    }
    inference = {k: v for k, v in inference.items() if v is not None}
    if inference:
        kwargs["inferenceConfig"] = inference
    if tool_config is not None:
        kwargs["toolConfig"] = tool_config
    output_config = _output_config(request.response_format)
    if output_config is not None:
        kwargs["outputConfig"] = output_config
    tier = _SERVICE_TIERS.get(request.service_tier or "")
    if tier is not None:
        kwargs["serviceTier"] = {"type": tier}
    if request.safety_identifier and _METADATA_VALUE.match(request.safety_identifier):
        kwargs["requestMetadata"] = {"safety_identifier": request.safety_identifier}
    return kwargs, names


def converse_request(request: ChatRequest) -> dict[str, Any]:
    """The ``ConverseStream`` keyword arguments for ``request``; ``ProviderError`` (invalid_prompt) if Bedrock
    cannot take it."""
    return _converse(request)[0]


# ---------------------------------------------------------------------------------------------------------
# Converse stream events -> provider events


class _Decoder:
    """Turns ConverseStream events into provider events, keeping what spans events (tool call indexes)."""

    def __init__(self, names: _ToolNames) -> None:
        self._names = names
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._with_arguments: set[int] = set()
        self.finished = False

    def _tool_index(self, block: int) -> int:
        if block not in self._tools:
            self._tools[block] = len(self._tools)
        return self._tools[block]

    def events(self, event: dict[str, Any]) -> list[ProviderEvent]:
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta, block = body.get("delta") or {}, int(body.get("contentBlockIndex") or 0)
            out: list[ProviderEvent] = []
            if delta.get("text"):
                out.append(TextDelta(str(delta["text"])))
            if isinstance(delta.get("toolUse"), dict) and delta["toolUse"].get("input"):
                self._with_arguments.add(block)
                out.append(ToolCallDelta(index=self._tool_index(block), arguments=str(delta["toolUse"]["input"])))
            reasoning = delta.get("reasoningContent")
            if isinstance(reasoning, dict) and reasoning.get("text"):
                out.append(ReasoningDelta(str(reasoning["text"])))
            return out
        if "contentBlockStart" in event:
            body = event["contentBlockStart"]
            tool = (body.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                index = self._tool_index(int(body.get("contentBlockIndex") or 0))
                name = self._names.engine(tool.get("name"))
                return [ToolCallDelta(index=index, call_id=tool.get("toolUseId"), name=name)]
            return []
        if "contentBlockStop" in event:
            block = int(event["contentBlockStop"].get("contentBlockIndex") or 0)
            if block in self._tools and block not in self._with_arguments:
                return [ToolCallDelta(index=self._tools[block], arguments="{}")]  # a call without arguments
            return []
        if "messageStop" in event:
            reason = str(event["messageStop"].get("stopReason") or "end_turn")
            if reason in _MALFORMED:
                raise ProviderError(_MALFORMED[reason], code="server_error")
            self.finished = True
            return [Finish(_FINISH.get(reason, "stop"))]
        if "metadata" in event:
            usage = event["metadata"].get("usage") or {}
            if not usage:
                return []
            cache_read = int(usage.get("cacheReadInputTokens") or 0)
            cache_write = int(usage.get("cacheWriteInputTokens") or 0)
            tier = (event["metadata"].get("serviceTier") or {}).get("type")
            return [
                Usage(
                    input_tokens=int(usage.get("inputTokens") or 0) + cache_read + cache_write,
                    output_tokens=int(usage.get("outputTokens") or 0),
                    cached_tokens=cache_read,
                    service_tier=_REPORTED_TIERS.get(str(tier)) if tier else None,
                )
            ]
        for key, body in event.items():  # an exception member delivered as an event
            code = key[:1].upper() + key[1:]
            if code in _ERRORS:
                message = body.get("message") if isinstance(body, dict) else None
                raise _client_error(code, str(message or ""), None)
        return []


# ---------------------------------------------------------------------------------------------------------
# Errors


def _client_error(code: str, message: str, status: int | None) -> ProviderError:
    kind, default_status = _ERRORS.get(code, ("", 0))
    status = status if status and status >= 400 else default_status or None
    if not kind and status == 429:
        kind = "rate_limit_exceeded"
    elif not kind:
        kind = "invalid_prompt" if status and status < 500 else "server_error"
    if code == "AccessDeniedException":
        # The raw message names the role and account; the log keeps it, the client gets the actionable part.
        logger.warning("bedrock access denied", extra={"error": message})
        message = (
            "this deployment's IAM role may not invoke the model, or model access is not enabled in the "
            "Amazon Bedrock console for this region"
        )
    detail = f": {message}" if message else "."
    return ProviderError(f"Amazon Bedrock returned {code or 'an error'}{detail}", code=kind, status=status)


def _provider_error(exc: BaseException) -> ProviderError:
    """Any failure of a Bedrock call as a ``ProviderError`` (the message never carries a traceback)."""
    if isinstance(exc, ProviderError):
        return exc
    from botocore import exceptions as boto
    from urllib3 import exceptions as http

    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        code = code[:1].upper() + code[1:]  # in-stream exceptions are named like "throttlingException"
        status = (
            None
            if isinstance(exc, boto.EventStreamError)
            else exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
        return _client_error(code, str(error.get("Message") or ""), status)
    if isinstance(exc, boto.ParamValidationError):
        return _invalid(f"Amazon Bedrock cannot take this request: {exc.kwargs.get('report', exc)}")
    if isinstance(exc, (boto.ReadTimeoutError, boto.ConnectTimeoutError, http.TimeoutError, TimeoutError)):
        return ProviderError("Amazon Bedrock timed out.", code="server_error")
    if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return ProviderError("Amazon Bedrock: no AWS credentials were found for this deployment.")
    if isinstance(exc, boto.NoRegionError):
        return ProviderError("Amazon Bedrock: no AWS region is configured (set BEDROCK_REGION).")
    logger.warning("bedrock stream broke", extra={"error": repr(exc)})
    return ProviderError(f"Amazon Bedrock connection failed: {type(exc).__name__}.")


# ---------------------------------------------------------------------------------------------------------
# The provider


def _new_client(settings: Settings) -> Any:
    """A ``bedrock-runtime`` client (region: BEDROCK_REGION, else the function's own AWS_REGION)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.upstream_connect_timeout_seconds,
        read_timeout=settings.upstream_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 3},  # two retries (throttling, 5xx, connection)
        max_pool_connections=64,
        tcp_keepalive=True,
    )
    session = boto3.session.Session()  # not the module-level default session: that one is not thread-safe
    return session.client("bedrock-runtime", region_name=settings.bedrock_region or None, config=config)


class _Pump(threading.Thread):
    """Calls ``converse_stream`` and reads its event stream, handing ``(kind, value)`` to the event loop:
    ``("event", dict)`` per event, then ``("end", None)`` or ``("error", exception)``."""

    def __init__(
        self,
        client: Callable[[], Any],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[tuple[str, Any]],
    ) -> None:
        super().__init__(name="bedrock-stream", daemon=True)
        self._client, self._kwargs, self._loop, self._queue = client, kwargs, loop, queue
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopped.set()

    def run(self) -> None:
        stream = None
        try:
            stream = self._client().converse_stream(**self._kwargs)["stream"]
            with self._lock:
                self._stream = stream
            if self._stopped.is_set():
                return
            for event in stream:
                if self._stopped.is_set():
                    return
                self._put("event", event)
            self._put("end", None)
        except BaseException as exc:  # handed to the loop; nothing is raised in this thread
            if not self._stopped.is_set():
                self._put("error", exc)
        finally:
            if stream is not None:
                _close(stream)

    def stop(self) -> None:
        """Stop reading (from any thread, more than once): the reading thread is woken and closes the stream."""
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _interrupt(stream)


def _close(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # a stream that broke may complain on close; it is closed either way
        pass


def _interrupt(stream: Any) -> None:
    """Wake a thread blocked reading ``stream`` without blocking this one.

    Closing the response here would wait for the reader's buffer lock, i.e. for Bedrock's next bytes, with the
    event loop stuck behind it. Shutting the socket down (urllib3's ``HTTPResponse.shutdown``) ends the
    blocked read at once; the reading thread then closes the connection, which tells Bedrock to stop.
    """
    raw: Any = getattr(stream, "_raw_stream", None)  # botocore's EventStream reads this urllib3 response
    try:
        raw.shutdown()
        return
    except Exception:  # no socket to shut down (released, already closed, or not urllib3): close elsewhere
        pass
    threading.Thread(target=_close, args=(stream,), name="bedrock-stream-close", daemon=True).start()


class BedrockProvider:
    """Streams ``ConverseStream``; maps Bedrock errors, timeouts and broken streams to ProviderError."""

    name = "bedrock"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client_instance: Any = None
        self._client_lock = threading.Lock()

    def _client(self) -> Any:
        """The cached client, created on first use (called from the stream thread, never the event loop)."""
        with self._client_lock:
            if self._client_instance is None:
                self._client_instance = _new_client(self._settings)
            return self._client_instance

    async def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        try:
            kwargs, names = _converse(request)
        except ProviderError:
            raise
        except Exception as exc:  # a message shape this mapping does not know: a bug here, not the caller's
            logger.exception("bedrock request mapping failed")
            message = f"The request could not be converted for Amazon Bedrock ({type(exc).__name__})."
            raise ProviderError(message) from exc
        decoder = _Decoder(names)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        pump = _Pump(self._client, kwargs, asyncio.get_running_loop(), queue)
        pump.start()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise _provider_error(value) from value
                for event in decoder.events(value):
                    yield event
        finally:
            pump.stop()
        if not decoder.finished:
            raise ProviderError("Amazon Bedrock's stream ended before the response was finished.")
