"""A scripted, deterministic OpenAI-compatible Chat Completions server: "the model" for end-to-end tests and benchmarks.

It is a raw ASGI app (no framework routing, no pydantic, pre-encoded SSE frames) so that it adds as little latency as
possible; the benchmark measures the gateway's overhead against it.

Endpoints (each also answers under a ``/v1`` prefix, so ``{base_url}/chat/completions`` and ``/chat/completions`` work):

* ``POST /v1/chat/completions`` - OpenAI's request JSON. ``stream: true`` answers with SSE frames
  ``data: {chat.completion.chunk}\\n\\n``: the first delta carries ``role: "assistant"``, then reasoning / content /
  tool-call deltas, a final chunk with an empty delta and ``finish_reason``, then (if ``stream_options.include_usage``)
  a usage chunk with ``choices: []``, then ``data: [DONE]\\n\\n``. Otherwise a ``chat.completion`` object with
  ``usage``.
  Token counts are an *estimate*: whitespace-split word counts of the prompt's message texts and of the reply
  (content + reasoning + tool-call arguments); ``completion_tokens_details.reasoning_tokens`` counts the reasoning.
  ``model`` in the answer is the request's ``model`` (``UpstreamConfig.model`` when absent).
* ``GET /_requests`` - ``{"requests": [...]}``: every API request received (chat completions and unknown paths; not
  the ``/_requests``, ``/_stats``, ``/health`` control endpoints), oldest first, each ``{"method", "path",
  "headers": {"authorization"?, "content-type"?}, "body": <parsed JSON or null>, "ts": <monotonic seconds>}``
  (``ts`` is ``time.monotonic()`` in the server's process). ``DELETE /_requests`` clears the log.
* ``GET /_stats`` - ``{"requests": n, "in_flight": k, "bytes_sent": b}``: chat-completion requests received, being
  answered now, and response-body bytes sent for them, since start (``DELETE /_stats`` resets the two counters).
* ``POST /v1/embeddings`` - deterministic embeddings (``input`` a string or a list of strings, ``dimensions``
  default 256): feature hashing of the lower-cased words (blake2b of each word picks a dimension and a sign),
  L2-normalised, so texts sharing words are close. Logged like chat requests; not counted in ``/_stats``.
* ``logprobs: true`` in the request: each streamed content chunk carries ``logprobs.content`` (one entry per
  chunk: its text as the token, logprob ``-0.5``, its UTF-8 bytes, and ``top_logprobs`` alternatives
  ``alt1``… at ``-1.5``…). ``service_tier`` in the request: the usage chunk reports it (``auto`` as
  ``default``).
* ``GET /health`` - ``200 ok``. ``GET /v1/models`` lists the configured model.
* Unknown path -> 404, wrong method -> 405, unparsable JSON or no ``messages`` list -> 400; all with an OpenAI error
  envelope ``{"error": {"message", "type", "code", "param"}}``.

The reply is decided by directives in the text of the LAST ``user`` message (``content`` is a string or a list of
parts; the ``text`` of the parts that have one is joined with ``"\\n"``; other parts are ignored). Directives are
case-sensitive, may appear anywhere (as whole words) and combine:

* ``FAIL <status>`` - answer at once with HTTP <status> and
  ``{"error":{"message":"scripted failure","type":"server_error","code":null,"param":null}}``.
* ``FAIL_MIDSTREAM`` - streaming: send any reasoning deltas and 2 content chunks, then break the connection without
  finishing the body (the client sees an incomplete chunked read). Not streaming: like ``FAIL 500``.
* ``SLOW <ms>`` - sleep <ms> before every streamed delta chunk except the first (overrides ``config.chunk_ms``);
  no effect on non-streamed answers.
* ``TTFT <ms>`` - sleep <ms> before the first byte of the answer (status line included), streamed or not
  (overrides ``config.ttft_ms``).
* ``HANG`` - accept the request and never answer (1 hour); ends when the client disconnects or the server stops.
* ``REASON <word>`` - first the reasoning ``thinking about <word>`` (streamed word by word as
  ``choices[0].delta.reasoning_content``; non-streamed as ``message.reasoning_content``), then the content.
* ``LENGTH`` - ``finish_reason`` is ``"length"`` (whatever the reply, tool calls included).
* ``CONTEXT <n>`` - the model's context is <n> words: a prompt of more words (all messages' texts) is refused at
  once with HTTP 400 ``context_length_exceeded`` ("This model's maximum context length is <n> tokens…").
* ``REPLY <text>`` - the content is exactly <text>: everything after ``REPLY`` and one space up to the end of the line
  (``\\r`` excluded). A bare ``REPLY`` at the end of a line means an empty reply; several REPLY lines are joined with
  ``"\\n"``.
* ``CALL <name> <json-args>`` - the model calls tool <name> with the arguments string <json-args> (the rest of the
  line, stripped, passed through verbatim, not validated; ``{}`` when missing). Several CALL lines -> parallel calls,
  indexes 0..n-1 in order. Call ids are ``call_<k>`` with k = (tool calls already in the conversation's assistant
  messages) + index + 1, so they are deterministic and unique within a conversation. ``finish_reason`` is
  ``"tool_calls"``. Streaming: per call, a first delta ``{"index", "id", "type": "function", "function": {"name",
  "arguments": ""}}`` then >= 3 deltas carrying pieces of the arguments string. With ``REPLY`` too, that text is sent as
  content before the calls. BUT when the last message of the conversation has role ``tool``, no call is made: the
  content is ``tool results: <contents of the trailing tool messages joined with ",">`` (e.g.
  ``tool results: {"t":1},{"t":2}``).
* Otherwise (no REPLY / CALL) the content echoes what the model saw:
  ``roles=<roles of all messages, comma-separated>; last=<last user message text>``,
  e.g. ``roles=system,user,assistant,user; last=hello``.

When the last user message has no directive, those of a leading ``system`` message (a request's instructions)
apply, so a request whose last user message the server writes itself (compaction) can be scripted too.

The REPLY and CALL payloads (the rest of their line) are not scanned for other directives; the rest of the text is.
Priority: ``FAIL`` > ``FAIL_MIDSTREAM`` (non-stream) > ``HANG`` > the reply.

Streamed content comes in chunks of about one word each (whitespace is attached to the following word, so the
concatenation is exact). With ``UpstreamConfig.chunks = N`` a generated reply (the echo or the tool-results text) is
exactly N content chunks: it is padded with filler words when it has fewer than N words, and its words are grouped
otherwise (REPLY text is never padded and stays one word per chunk).

Run it in-process with :func:`serve` (uvicorn in a background thread) or in a child process with
:func:`serve_process` / ``python -m local.scripted_upstream --port P --ttft-ms X --chunk-ms Y --chunks N``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import logging
import math
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import uvicorn

__all__ = [
    "ASGIApp",
    "ScriptedUpstream",
    "UpstreamConfig",
    "main",
    "make_app",
    "serve",
    "serve_process",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DESCRIPTION = "A scripted, deterministic OpenAI-compatible Chat Completions server (see the module docstring)."
ROOT = Path(__file__).resolve().parent.parent
HANG_SECONDS = 3600.0
FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Defaults of the scripted model; directives in a request override the timings."""

    ttft_ms: float = 0
    """Sleep before the first byte of every answer (``TTFT <ms>`` overrides)."""
    chunk_ms: float = 0
    """Sleep between streamed delta chunks (``SLOW <ms>`` overrides)."""
    chunks: int | None = None
    """When set, a generated reply (echo / tool results) is streamed as exactly this many content chunks."""
    model: str = "scripted"
    """Model name used when the request has none."""

    def __post_init__(self) -> None:
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("chunks must be >= 1")
        if self.ttft_ms < 0 or self.chunk_ms < 0:
            raise ValueError("ttft_ms and chunk_ms must be >= 0")


# --------------------------------------------------------------------------------------------------------------------
# Directives


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str


@dataclass(slots=True)
class Script:
    fail_status: int | None = None
    fail_midstream: bool = False
    slow_ms: float | None = None
    ttft_ms: float | None = None
    hang: bool = False
    reason: str | None = None
    length: bool = False
    context_limit: int | None = None
    reply: str | None = None
    calls: list[ToolCall] = field(default_factory=list)


_ANY_DIRECTIVE_RE = re.compile(r"FAIL|SLOW|TTFT|HANG|REASON|LENGTH|REPLY|CALL|CONTEXT")
# REPLY / CALL own the rest of their line; one regex so that whichever comes first on a line wins.
_PAYLOAD_RE = re.compile(
    r"\bREPLY(?:[ \t](?P<reply>[^\r\n]*)|(?=[\r\n]|$))"
    r"|\bCALL[ \t]+(?P<name>\S+)(?:[ \t]+(?P<args>[^\r\n]*))?"
)
_FAIL_RE = re.compile(r"\bFAIL[ \t]+(\d{3})\b")
_FAIL_MIDSTREAM_RE = re.compile(r"\bFAIL_MIDSTREAM\b")
_SLOW_RE = re.compile(r"\bSLOW[ \t]+(\d+(?:\.\d+)?)\b")
_TTFT_RE = re.compile(r"\bTTFT[ \t]+(\d+(?:\.\d+)?)\b")
_HANG_RE = re.compile(r"\bHANG\b")
_REASON_RE = re.compile(r"\bREASON[ \t]+(\S+)")
_LENGTH_RE = re.compile(r"\bLENGTH\b")
_CONTEXT_RE = re.compile(r"\bCONTEXT[ \t]+(\d+)\b")


def parse_directives(text: str) -> Script:
    """Parse the directives in ``text`` (the last user message)."""
    script = Script()
    if not _ANY_DIRECTIVE_RE.search(text):
        return script
    replies: list[str] = []
    for match in _PAYLOAD_RE.finditer(text):
        if match.group("name") is not None:
            args = (match.group("args") or "").strip() or "{}"
            script.calls.append(ToolCall(match.group("name"), args))
        else:
            replies.append(match.group("reply") or "")
    if replies:
        script.reply = "\n".join(replies)
    rest = _PAYLOAD_RE.sub(" ", text)
    if m := _FAIL_RE.search(rest):
        status = int(m.group(1))
        if 100 <= status <= 599:
            script.fail_status = status
    script.fail_midstream = bool(_FAIL_MIDSTREAM_RE.search(rest))
    if m := _SLOW_RE.search(rest):
        script.slow_ms = float(m.group(1))
    if m := _TTFT_RE.search(rest):
        script.ttft_ms = float(m.group(1))
    script.hang = bool(_HANG_RE.search(rest))
    if m := _REASON_RE.search(rest):
        script.reason = m.group(1)
    script.length = bool(_LENGTH_RE.search(rest))
    if m := _CONTEXT_RE.search(rest):
        script.context_limit = int(m.group(1))
    return script


_WORD_RE = re.compile(r"\s*\S+")


def split_words(text: str) -> list[str]:
    """Split into about one word per piece, whitespace attached to the following word; ``"".join`` gives ``text``."""
    pieces: list[str] = _WORD_RE.findall(text)
    if not pieces:
        return [text] if text else []
    tail = len(text) - sum(map(len, pieces))
    if tail:
        pieces[-1] += text[-tail:]
    return pieces


def pad_words(text: str, n: int) -> str:
    """Append filler words until ``text`` has at least ``n`` word pieces."""
    missing = n - len(split_words(text))
    if missing <= 0:
        return text
    return text + "".join(" " + FILLER[i % len(FILLER)] for i in range(missing))


def split_exact(text: str, n: int) -> list[str]:
    """Split ``text`` (which has >= ``n`` word pieces) into exactly ``n`` non-empty pieces of whole words."""
    pieces = split_words(text)
    k = len(pieces)
    if k < n:
        raise ValueError(f"{k} words cannot make {n} chunks")
    return ["".join(pieces[k * i // n : k * (i + 1) // n]) for i in range(n)]


def split_arguments(arguments: str) -> list[str]:
    """Split an arguments string into >= 3 pieces of about 8 characters (some empty when it is shorter than 3)."""
    k = len(arguments)
    n = max(3, -(-k // 8))
    return [arguments[k * i // n : k * (i + 1) // n] for i in range(n)]


_WORD = re.compile(r"[a-z0-9]+")


def hashed_embedding(text: str, dims: int) -> list[float]:
    """Feature hashing of the lower-cased words: deterministic, and texts sharing words are close."""
    vector = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        vector[value % dims] += 1.0 if value >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the ``text`` of the parts of a list joined with newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return "\n".join(texts)
    return ""


def count_words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------------------------------------------------
# The reply


@dataclass(slots=True)
class Reply:
    content: str | None
    content_chunks: list[str]
    reasoning: str | None
    calls: list[tuple[str, ToolCall]]  # (id, call)
    finish_reason: str
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        tokens = count_words(self.content or "") + count_words(self.reasoning or "")
        return tokens + sum(count_words(call.arguments) for _, call in self.calls)

    def usage(self) -> dict[str, Any]:
        completion = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": count_words(self.reasoning or "")},
        }


def decide_reply(messages: list[dict[str, Any]], script: Script, chunks: int | None) -> Reply:
    """What the scripted model answers to ``messages`` given the directives of the last user message."""
    roles = [str(m.get("role")) for m in messages]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    last_text = message_text(last_user.get("content")) if last_user is not None else ""
    prompt_tokens = sum(count_words(message_text(m.get("content"))) for m in messages)
    calls: list[tuple[str, ToolCall]] = []
    generated = False
    content: str | None
    if script.calls and roles and roles[-1] == "tool":
        trailing: list[str] = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            trailing.append(message_text(m.get("content")))
        content = "tool results: " + ",".join(reversed(trailing))
        generated = True
    elif script.calls:
        before = sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
        calls = [(f"call_{before + i + 1}", call) for i, call in enumerate(script.calls)]
        content = script.reply
    elif script.reply is not None:
        content = script.reply
    else:
        content = f"roles={','.join(roles)}; last={last_text}"
        generated = True
    if generated and chunks is not None and content is not None:
        content = pad_words(content, chunks)
        content_chunks = split_exact(content, chunks)
    else:
        content_chunks = split_words(content or "")
    finish = "length" if script.length else ("tool_calls" if calls else "stop")
    reasoning = f"thinking about {script.reason}" if script.reason is not None else None
    return Reply(content, content_chunks, reasoning, calls, finish, prompt_tokens)


# --------------------------------------------------------------------------------------------------------------------
# The ASGI app


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": type_, "code": code, "param": param}}).encode()


SCRIPTED_FAILURE_BODY = _error_body("scripted failure", "server_error")
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_DONE = b"data: [DONE]\n\n"
_CONTROL_PATHS = frozenset({"/_requests", "/_stats", "/health"})


class ScriptedAbort(Exception):
    """Raised inside the app to break a response mid-body; uvicorn's log record for it is filtered out."""


class _QuietAbortFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ScriptedAbort))


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietAbortFilter) for f in logger.filters):
        logger.addFilter(_QuietAbortFilter())


class _Flight:
    """A request that sleeps: ``stop`` resolves when the client disconnects or the server closes."""

    __slots__ = ("started", "stop")

    def __init__(self) -> None:
        self.stop: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.started = False


class ScriptedUpstream:
    """The raw ASGI app (see the module docstring). Inspect ``requests`` / ``request_count`` in-process if you like."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.requests: list[dict[str, Any]] = []
        self.request_count = 0
        self.in_flight = 0
        self.bytes_sent = 0
        self._ids = itertools.count(1)
        self._flights: set[_Flight] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        _install_log_filter()

    # -- lifecycle

    def close(self) -> None:
        """Thread-safe: end every sleeping / hanging request now (a 503 if nothing was sent yet, else a broken body)."""
        self._closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop_flights)

    def _stop_flights(self) -> None:
        for flight in list(self._flights):
            if not flight.stop.done():
                flight.stop.set_result("closing")

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: str = scope["path"]
        path = raw_path[3:] if raw_path.startswith("/v1/") else raw_path
        method: str = scope["method"]
        if path in _CONTROL_PATHS:
            await self._control(path, method, send)
            return
        body = await _read_body(receive)
        entry, valid_json = self._log(scope, raw_path, method, body)
        if path == "/embeddings" and method == "POST" and valid_json:
            await self._embeddings(entry["body"], send)
            return
        if path != "/chat/completions":
            if path == "/models" and method == "GET":
                models = {
                    "object": "list",
                    "data": [{"id": self.config.model, "object": "model", "created": 0}],
                }
                await _send_json(send, 200, _dumps(models).encode())
            else:
                message = f"Unknown request URL: {method} {raw_path}."
                await _send_json(
                    send,
                    404,
                    _error_body(message, "invalid_request_error", "unknown_url"),
                )
            return
        if method != "POST":
            message = f"Method {method} not allowed on {raw_path}."
            await _send_json(
                send,
                405,
                _error_body(message, "invalid_request_error", "method_not_allowed"),
            )
            return
        self.request_count += 1
        payload = entry["body"]
        if not valid_json:
            await _send_json(
                send,
                400,
                _error_body("Could not parse the JSON body.", "invalid_request_error"),
            )
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            message = "The body must be a JSON object with a 'messages' list."
            await _send_json(
                send,
                400,
                _error_body(message, "invalid_request_error", None, "messages"),
            )
            return
        messages = [m if isinstance(m, dict) else {} for m in payload["messages"]]
        self.in_flight += 1
        try:
            await self._complete(payload, messages, receive, send)
        finally:
            self.in_flight -= 1

    async def _embeddings(self, payload: Any, send: Send) -> None:
        texts = payload.get("input") if isinstance(payload, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            body = _error_body("'input' must be a string or a list of strings.", "invalid_request_error", None, "input")
            await _send_json(send, 400, body)
            return
        dims = payload.get("dimensions") or 256
        data = [
            {"object": "embedding", "index": n, "embedding": hashed_embedding(t, dims)} for n, t in enumerate(texts)
        ]
        words = sum(count_words(t) for t in texts)
        answer = {
            "object": "list",
            "data": data,
            "model": payload.get("model") or self.config.model,
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
        await _send_json(send, 200, _dumps(answer).encode())

    def _log(self, scope: Scope, path: str, method: str, body: bytes) -> tuple[dict[str, Any], bool]:
        """Append the request to the log; return the entry and whether the body was valid JSON."""
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"authorization" or name == b"content-type":
                headers[name.decode()] = value.decode("latin-1")
        parsed: Any = None
        valid = False
        if body:
            try:
                parsed = json.loads(body)
                valid = True
            except ValueError:
                pass
        entry = {
            "method": method,
            "path": path,
            "headers": headers,
            "body": parsed,
            "ts": time.monotonic(),
        }
        self.requests.append(entry)
        return entry, valid

    async def _control(self, path: str, method: str, send: Send) -> None:
        if path == "/health" and method in ("GET", "HEAD"):
            await _send(send, 200, [(b"content-type", b"text/plain")], b"ok")
        elif path == "/_requests" and method == "GET":
            await _send_json(send, 200, _dumps({"requests": self.requests}).encode())
        elif path == "/_requests" and method == "DELETE":
            self.requests = []
            await _send_json(send, 200, b'{"deleted":true}')
        elif path == "/_stats" and method == "GET":
            stats = {
                "requests": self.request_count,
                "in_flight": self.in_flight,
                "bytes_sent": self.bytes_sent,
            }
            await _send_json(send, 200, _dumps(stats).encode())
        elif path == "/_stats" and method == "DELETE":
            self.request_count = 0
            self.bytes_sent = 0
            await _send_json(send, 200, b'{"deleted":true}')
        else:
            message = f"Method {method} not allowed on {path}."
            await _send_json(
                send,
                405,
                _error_body(message, "invalid_request_error", "method_not_allowed"),
            )

    # -- chat completions

    async def _complete(
        self,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        receive: Receive,
        send: Send,
    ) -> None:
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        script = parse_directives(message_text(last_user.get("content")) if last_user is not None else "")
        if script == Script() and messages and messages[0].get("role") == "system":
            # directives of a leading system message apply when the last user message has none
            script = parse_directives(message_text(messages[0].get("content")))
        stream = bool(payload.get("stream"))
        if script.fail_status is not None or (script.fail_midstream and not stream):
            status = script.fail_status if script.fail_status is not None else 500
            self.bytes_sent += len(SCRIPTED_FAILURE_BODY)
            await _send_json(send, status, SCRIPTED_FAILURE_BODY)
            return
        words = sum(count_words(message_text(m.get("content"))) for m in messages)
        if script.context_limit is not None and words > script.context_limit:
            message = (
                f"This model's maximum context length is {script.context_limit} tokens. However, your messages "
                f"resulted in {words} tokens. Please reduce the length of the messages."
            )
            body = _error_body(message, "invalid_request_error", "context_length_exceeded", "messages")
            self.bytes_sent += len(body)
            await _send_json(send, 400, body)
            return
        config = self.config
        ttft = (script.ttft_ms if script.ttft_ms is not None else config.ttft_ms) / 1000
        gap = (script.slow_ms if script.slow_ms is not None else config.chunk_ms) / 1000 if stream else 0.0
        if not (script.hang or ttft > 0 or gap > 0):
            await self._answer(payload, messages, script, stream, send, None, 0.0, 0.0)
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        flight = _Flight()
        self._flights.add(flight)
        watcher = asyncio.create_task(_watch_disconnect(receive, flight))
        if self._closing:
            self._stop_flights()
        try:
            if script.hang:
                await asyncio.wait((flight.stop,), timeout=HANG_SECONDS)
                completed = False
            else:
                completed = await self._answer(payload, messages, script, stream, send, flight, ttft, gap)
            if not completed and flight.stop.done() and flight.stop.result() == "closing":
                if not flight.started:
                    body = _error_body("scripted upstream is shutting down", "server_error")
                    await _send_json(send, 503, body)
                else:
                    raise ScriptedAbort("scripted upstream is shutting down")
        finally:
            watcher.cancel()
            self._flights.discard(flight)

    async def _answer(
        self,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        script: Script,
        stream: bool,
        send: Send,
        flight: _Flight | None,
        ttft: float,
        gap: float,
    ) -> bool:
        """Send the answer; return False early (leaving the response unfinished) when ``flight.stop`` resolves."""
        reply = decide_reply(messages, script, self.config.chunks)
        model = payload.get("model")
        model = model if isinstance(model, str) and model else self.config.model
        completion_id = f"chatcmpl-scripted{next(self._ids):08d}"
        created = int(time.time())
        if flight is not None and ttft > 0 and await _stopped(flight, ttft):
            return False
        if not stream:
            body = _dumps(_completion_object(reply, completion_id, created, model)).encode()
            if flight is not None:
                flight.started = True
            self.bytes_sent += len(body)
            await _send_json(send, 200, body)
            return True

        head = f'data: {{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},"model":'
        prefix = (head + _dumps(model) + ',"choices":[{"index":0,"delta":').encode()
        deltas = _stream_deltas(reply, script.fail_midstream)
        top = int(payload.get("top_logprobs") or 0) if payload.get("logprobs") else -1
        frames = [
            prefix + _dumps(delta).encode() + b',"logprobs":' + _logprobs(delta, top) + b',"finish_reason":null}]}\n\n'
            for delta in deltas
        ]
        if flight is not None:
            flight.started = True
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        for i, frame in enumerate(frames):
            if i and gap > 0 and flight is not None and await _stopped(flight, gap):
                return False
            self.bytes_sent += len(frame)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if script.fail_midstream:
            raise ScriptedAbort("FAIL_MIDSTREAM")
        tail = prefix + b'{},"logprobs":null,"finish_reason":"' + reply.finish_reason.encode() + b'"}]}\n\n'
        options = payload.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }
            usage |= {"choices": [], "usage": reply.usage()}
            tier = payload.get("service_tier")
            if isinstance(tier, str):
                usage["service_tier"] = "default" if tier == "auto" else tier
            tail += b"data: " + _dumps(usage).encode() + b"\n\n"
        tail += _DONE
        self.bytes_sent += len(tail)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return True


def _logprobs(delta: dict[str, Any], top: int) -> bytes:
    """``choices[0].logprobs`` of a content chunk when the request asked for them (``top`` >= 0), else null."""
    text = delta.get("content")
    if top < 0 or not isinstance(text, str):
        return b"null"

    def token(value: str, logprob: float) -> dict[str, Any]:
        return {"token": value, "logprob": logprob, "bytes": list(value.encode())}

    alternatives = [token(text, -0.5)] + [token(f"alt{k}", -0.5 - k) for k in range(1, top)]
    return _dumps({"content": [token(text, -0.5) | {"top_logprobs": alternatives[:top]}], "refusal": None}).encode()


def _stream_deltas(reply: Reply, fail_midstream: bool) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        deltas += [{"reasoning_content": piece} for piece in split_words(reply.reasoning)]
    content_chunks = reply.content_chunks[:2] if fail_midstream else reply.content_chunks
    deltas += [{"content": piece} for piece in content_chunks]
    if not fail_midstream:
        for index, (call_id, call) in enumerate(reply.calls):
            function = {"name": call.name, "arguments": ""}
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": function,
                        }
                    ]
                }
            )
            for piece in split_arguments(call.arguments):
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    if not deltas:
        deltas.append({"content": ""})
    deltas[0] = {"role": "assistant", **deltas[0]}
    return deltas


def _completion_object(reply: Reply, completion_id: str, created: int, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
    }
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call_id, call in reply.calls
        ]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": reply.finish_reason,
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": reply.usage(),
    }


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await _send(send, status, _JSON_HEADERS, body)


async def _watch_disconnect(receive: Receive, flight: _Flight) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not flight.stop.done():
                flight.stop.set_result("disconnect")
            return


async def _stopped(flight: _Flight, seconds: float) -> bool:
    """Sleep ``seconds`` unless the flight is stopped first; return whether it is stopped."""
    if not flight.stop.done():
        await asyncio.wait((flight.stop,), timeout=seconds)
    return flight.stop.done()


def make_app(config: UpstreamConfig | None = None) -> ScriptedUpstream:
    """The raw ASGI app of the scripted model (an ``ASGIApp``)."""
    return ScriptedUpstream(config or UpstreamConfig())


# --------------------------------------------------------------------------------------------------------------------
# Runners

_LOOP = "uvloop" if find_spec("uvloop") is not None else "asyncio"
_HTTP = "httptools" if find_spec("httptools") is not None else "h11"


def uvicorn_config(app: ScriptedUpstream, host: str, port: int) -> uvicorn.Config:
    """The uvicorn settings both runners use (fastest available loop / parser, quiet logs)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=_LOOP,
        http=_HTTP,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=2,
    )
    _install_log_filter()
    return config


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is TCP, and without it
    # Nagle + delayed ACKs add ~40 ms to every response written in two parts (headers, body).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


@contextmanager
def serve(config: UpstreamConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the scripted model under uvicorn in a background thread; yield its base URL ``http://host:port/v1``."""
    app = make_app(config)
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn_config(app, host, bound_port))
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name="scripted-upstream",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("scripted upstream did not start")
            time.sleep(0.002)
        yield _base_url(host, bound_port)
    finally:
        app.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def serve_process(config: UpstreamConfig | None = None, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``python -m local.scripted_upstream`` in a child process; yield its base URL once ``/health`` answers."""
    config = config or UpstreamConfig()
    args = [
        sys.executable,
        "-m",
        "local.scripted_upstream",
        "--host",
        host,
        "--port",
        str(port),
    ]
    args += [
        "--ttft-ms",
        str(config.ttft_ms),
        "--chunk-ms",
        str(config.chunk_ms),
        "--model",
        config.model,
    ]
    if config.chunks is not None:
        args += ["--chunks", str(config.chunks)]
    args.append("--exit-on-stdin-eof")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def drain() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=drain, name="scripted-upstream-stdout", daemon=True).start()
    try:
        try:
            first = lines.get(timeout=30)
        except queue.Empty:
            raise RuntimeError("scripted upstream process did not report its address") from None
        match = re.search(r"(http://\S+/v1)", first)
        if match is None:
            raise RuntimeError(f"scripted upstream process failed to start (exit code {proc.poll()})")
        base_url = match.group(1)
        root = base_url.removesuffix("/v1")
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"scripted upstream process exited with {proc.returncode}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("scripted upstream process did not become healthy")
            time.sleep(0.01)
        yield base_url
    finally:
        # Closing stdin makes the child end its pending requests and exit (see --exit-on-stdin-eof); then escalate.
        with suppress(OSError):
            proc.stdin.close()
        for stop in (None, proc.terminate, proc.kill):
            if stop is not None:
                stop()
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.scripted_upstream", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--chunk-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--model", default="scripted")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (parent died)",
    )
    ns = parser.parse_args(argv)
    config = UpstreamConfig(ttft_ms=ns.ttft_ms, chunk_ms=ns.chunk_ms, chunks=ns.chunks, model=ns.model)
    app = make_app(config)
    sock = _bind(ns.host, ns.port)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn_config(app, ns.host, port))
    if ns.exit_on_stdin_eof:

        def watch_stdin() -> None:
            with suppress(OSError, ValueError):
                sys.stdin.read()
            app.close()
            server.should_exit = True

        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
    print(f"scripted upstream listening on {_base_url(ns.host, port)}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
