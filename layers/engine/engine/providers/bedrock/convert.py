"""Converting a :class:`ChatRequest` (Chat Completions shape) into a Converse request.

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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from pydantic_core import from_json, to_json

from engine.providers.base import ChatRequest
from engine.providers.bedrock.errors import invalid

__all__ = ["ToolNames", "converse", "converse_request"]

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
_METADATA_VALUE = re.compile(r"^[a-zA-Z0-9\s:_@$#=/+,.-]{1,256}$")


class ToolNames:
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
        raise invalid("A data URL must look like data:<media type>;base64,<data>.")
    params = [p.strip().lower() for p in header.split(";")]
    try:
        if "base64" in params[1:]:
            data = base64.b64decode("".join(payload.split()), validate=True)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise invalid("A data URL's base64 payload could not be decoded.") from None
    if not data:
        raise invalid("A data URL has no data.")
    return params[0], data


def _image(url: str) -> dict[str, Any]:
    if not url.startswith("data:"):
        raise invalid(
            "Amazon Bedrock cannot fetch images from a URL: send the image inline as a base64 data URL "
            "(data:image/png;base64,...)."
        )
    media_type, data = _data_url(url)
    fmt = _IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise invalid(f"Amazon Bedrock accepts PNG, JPEG, GIF and WebP images, not {media_type or 'this data'}.")
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
            raise invalid("Amazon Bedrock needs a file's content: send input_file with file_data, not file_id.")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if str(file_data).startswith("data:"):
            media_type, data = _data_url(str(file_data))
            fmt = _DOCUMENT_FORMATS.get(media_type) or _DOCUMENT_EXTENSIONS.get(extension)
        else:
            try:
                data = base64.b64decode("".join(str(file_data).split()), validate=True)
            except (binascii.Error, ValueError):
                raise invalid("An input_file's file_data could not be decoded as base64.") from None
            fmt = _DOCUMENT_EXTENSIONS.get(extension)
        if fmt is None or not data:
            raise invalid("Amazon Bedrock accepts PDF, CSV, DOC, DOCX, XLS, XLSX, HTML, TXT and MD files.")
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
            raise invalid(f"Amazon Bedrock cannot take {kind!r} message content.")
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


def _tool_config(request: ChatRequest, names: ToolNames) -> dict[str, Any] | None:
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


def converse(request: ChatRequest) -> tuple[dict[str, Any], ToolNames]:
    """The Converse request for ``request`` and the tool names it used (to map streamed calls back)."""
    names = ToolNames()
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
                raise invalid("Amazon Bedrock takes only text in system and developer messages.")
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
            raise invalid(f"Amazon Bedrock cannot take a message with role {role!r}.")
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
    return converse(request)[0]
