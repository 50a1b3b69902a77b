"""Any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Fireworks, Ollama…) as the model.

The upstream is always called with ``stream: true`` so streamed and non-streamed responses share one path.
aiohttp is the HTTP client: under 50 concurrent streams httpx 0.28 fell to a fraction of the direct
throughput (encode/httpx#3215, measured in ``make bench``), aiohttp did not.

``service_tier``, ``prompt_cache_key``, ``safety_identifier`` and ``logprobs``/``top_logprobs`` are sent only
when the client set them (upstreams that predate a field may refuse it); the tier the upstream reports comes
back on ``Usage``, token log probabilities on ``TextDelta``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic_core import from_json

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
from engine.providers.sse import SSEDecoder

if TYPE_CHECKING:
    from engine.settings import Settings

__all__ = ["ChatCompletionsProvider", "chat_body", "http_error"]

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}


def chat_body(request: ChatRequest) -> dict[str, Any]:
    """The Chat Completions request body for ``request`` (only the fields that were set)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_output_tokens,
        "response_format": request.response_format,
        "reasoning_effort": request.reasoning_effort,
        "user": request.user,
        "service_tier": request.service_tier,
        "prompt_cache_key": request.prompt_cache_key,
        "safety_identifier": request.safety_identifier,
        "logprobs": True if request.logprobs else None,
        "top_logprobs": request.top_logprobs if request.logprobs else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.tools:
        body["tools"] = request.tools
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    return body


def _upstream_error(raw: bytes) -> tuple[str, str | None]:
    """The message and ``code`` of an upstream error body (OpenAI's envelope, a bare string, or any text)."""
    try:
        data = from_json(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            code = err.get("code")
            return str(err["message"]), code if isinstance(code, str) and code else None
        if isinstance(err, str):
            return err, None
    except ValueError:
        pass
    return raw[:300].decode("utf-8", "replace"), None


def _upstream_message(raw: bytes) -> str:
    return _upstream_error(raw)[0]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare from model APIs and ignored)."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None


def http_error(status: int, raw: bytes, retry_after: str | None = None) -> ProviderError:
    """The upstream's HTTP error with its class and code kept: 404 ``model_not_found``, 429
    ``rate_limit_exceeded`` (and its Retry-After), 401/403 a server error saying this server's key was refused,
    another 4xx the upstream's own ``code`` (``invalid_prompt`` when it gives none), 5xx ``server_error``."""
    message, code = _upstream_error(raw)
    if status in (401, 403):
        return ProviderError(
            f"The upstream model provider refused this server's API key (HTTP {status}): {message}",
            code="server_error",
            status=status,
        )
    if status == 404:
        kind = "model_not_found"
    elif status == 429:
        kind = "rate_limit_exceeded"
    elif 400 <= status < 500:
        kind = code or "invalid_prompt"
    else:
        kind = "server_error"
    return ProviderError(
        f"Upstream model returned HTTP {status}: {message}",
        code=kind,
        status=status,
        retry_after=_retry_after(retry_after) if status == 429 else None,
    )


def _token(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": str(entry.get("token", "")),
        "logprob": float(entry.get("logprob") or 0.0),
        "bytes": list(entry.get("bytes") or []),
    }


def _logprob(entry: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions logprob entry in the Responses shape (the same fields; ``bytes`` never null)."""
    return _token(entry) | {"top_logprobs": [_token(top) for top in entry.get("top_logprobs") or ()]}


def _events_of(chunk: dict[str, Any]) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        # vLLM/DeepSeek/Fireworks send reasoning_content; Ollama and OpenRouter call it reasoning.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            events.append(ReasoningDelta(reasoning))
        if delta.get("content"):
            logprobs = (choice.get("logprobs") or {}).get("content") or ()
            events.append(TextDelta(delta["content"], tuple(_logprob(entry) for entry in logprobs)))
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=int(call.get("index", 0)),
                    call_id=call.get("id"),
                    name=fn.get("name"),
                    arguments=fn.get("arguments") or "",
                )
            )
        if choice.get("finish_reason"):
            events.append(Finish(_FINISH.get(choice["finish_reason"], "stop")))  # type: ignore[arg-type]
    usage = chunk.get("usage")
    if usage:
        events.append(
            Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
                reasoning_tokens=int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
                service_tier=chunk.get("service_tier") or None,
            )
        )
    return events


class ChatCompletionsProvider:
    """Streams ``POST {base}/chat/completions``; maps HTTP errors, timeouts and broken streams to ProviderError."""

    name = "chat_completions"

    def __init__(self, settings: Settings) -> None:
        self._url = settings.upstream_base_url.rstrip("/") + "/chat/completions"
        self._settings = settings
        # One pooled session per event loop: the stream function has one loop, but a worker thread that keeps a loop
        # of its own (the WebSocket worker, the local stack's in-process Lambdas) must not take another's session.
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )
        self._headers: dict[str, str] | None = None

    def _api_key(self) -> str | None:
        settings = self._settings
        if settings.upstream_api_key is not None:
            return settings.upstream_api_key.get_secret_value()
        if settings.upstream_api_key_secret_arn:
            from engine.keysecret import key_from_secret

            return key_from_secret(settings.upstream_api_key_secret_arn, max_age=300)  # a string, or {"api_key"}
        return None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self._settings.upstream_connect_timeout_seconds,
                sock_read=self._settings.upstream_timeout_seconds,
            )
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
            session = self._sessions[loop] = aiohttp.ClientSession(
                timeout=timeout, connector=connector, raise_for_status=False
            )
        return session

    async def aclose(self) -> None:
        """Close this loop's pooled connections (tests and shutdown; Lambda keeps them for the next invocation)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None and not session.closed:
            await session.close()

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        session = self._client()
        finished = False
        try:
            async with session.post(self._url, json=chat_body(request), headers=self._request_headers()) as resp:
                if resp.status >= 400:
                    raw = await resp.content.read(64 * 1024)
                    raise http_error(resp.status, raw, resp.headers.get("retry-after"))
                async for data in self._events(resp):
                    if data == b"[DONE]":
                        break
                    chunk = from_json(data)
                    if not isinstance(chunk, dict):
                        raise ValueError("an upstream chunk is not a JSON object")
                    if chunk.get("error"):
                        raise ProviderError(f"Upstream model error: {_upstream_message(data)}")
                    for event in _events_of(chunk):
                        finished = finished or isinstance(event, Finish)
                        yield event
        except ProviderError:
            raise
        except TimeoutError as exc:
            raise ProviderError("Upstream model timed out.", code="server_error") from exc
        except (aiohttp.ClientError, ValueError, TypeError, AttributeError) as exc:
            # a broken connection, or a chunk that is not the Chat Completions shape
            logger.warning("upstream stream broke", extra={"error": repr(exc)})
            raise ProviderError(f"Upstream model connection failed: {type(exc).__name__}.") from exc
        if not finished:
            raise ProviderError("Upstream model stream ended before the response was finished.")

    async def _events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The ``data`` of each SSE event, read in chunks of any size. The timeout counts silence between data:
        keep-alive comments alone do not keep a stalled upstream alive."""
        decoder = SSEDecoder()
        timeout = self._settings.upstream_timeout_seconds
        loop = asyncio.get_running_loop()
        last_data = loop.time()
        while True:
            remaining = last_data + timeout - loop.time()
            if remaining <= 0:
                raise TimeoutError
            try:
                async with asyncio.timeout(remaining):
                    chunk = await resp.content.readany()
            except TimeoutError:
                # bytes that arrived while this process was busy elsewhere are not the upstream's silence
                chunk = resp.content.read_nowait()
                if not chunk:
                    raise
            if not chunk:
                for data in decoder.close():
                    yield data
                return
            events = decoder.feed(chunk)
            if decoder.saw_data:
                last_data = loop.time()
            for data in events:
                if data.strip():
                    yield data.strip()
