"""A chaos Chat Completions upstream on loopback, for the fault suite (``local/faults.py``).

A raw asyncio server, not an ASGI app, so it can misbehave at the byte level: cut a connection before the
status line or in the middle of a body, send a 1 MB single-line event, keep-alive comments forever, ``data:``
split over several lines with ``\\r\\n`` endings. The case is the word after ``CHAOS`` in the last user
message (see ``CASES``); a request whose last message is a tool result is answered ``tool done: <result>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from local.processes import stop

__all__ = ["CASES", "main", "serve_chaos"]

_ROOT = Path(__file__).resolve().parent.parent

_CHAOS = re.compile(r"CHAOS (\S+)")

Writer = asyncio.StreamWriter


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-chaos",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "chaos",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


_USAGE = (
    b'data: {"id":"chatcmpl-chaos","object":"chat.completion.chunk","created":0,"model":"chaos","choices":[],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
)


async def _head(writer: Writer) -> None:
    writer.write(_SSE_HEAD)
    await writer.drain()


async def _send(writer: Writer, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _finish(writer: Writer) -> None:
    await _send(writer, _chunk({}, "stop") + _USAGE + b"data: [DONE]\n\n")


async def _ok(writer: Writer, text: str = "ok") -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": text}))
    await _finish(writer)


def _status(code: int, body: dict[str, Any] | str, extra: str = "") -> Callable[[Writer], Awaitable[None]]:
    async def answer(writer: Writer) -> None:
        raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
        kind = "application/json" if isinstance(body, dict) else "text/html"
        head = f"HTTP/1.1 {code} X\r\ncontent-type: {kind}\r\ncontent-length: {len(raw)}\r\n{extra}"
        head += "connection: close\r\n\r\n"
        await _send(writer, head.encode() + raw)

    return answer


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


async def _keepalive_only(writer: Writer) -> None:
    await _head(writer)
    while True:
        await _send(writer, b": keep-alive\n\n")
        await asyncio.sleep(0.2)


async def _silent_after_data(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": "partial "}))
    while True:
        await _send(writer, b": ping\n\n")
        await asyncio.sleep(0.2)


async def _hang(writer: Writer) -> None:
    await asyncio.sleep(3600)


async def _cut_headers(writer: Writer) -> None:
    transport = writer.transport
    transport.abort()


async def _cut_midstream(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": "half "}) + b'data: {"id":"chatcmpl-ch')
    writer.transport.abort()


async def _garbage(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": "a "}) + b"data: {this is not json}\n\n")
    await _finish(writer)


async def _wrong_shape(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, b'data: {"choices": "nope", "usage": 7}\n\ndata: [1, 2]\n\n')
    await _finish(writer)


async def _error_event(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": "so far "}))
    await _send(writer, b'data: {"error": {"message": "overloaded mid-stream", "code": "overloaded"}}\n\n')


async def _no_finish(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": "never finished"}) + b"data: [DONE]\n\n")


async def _huge(writer: Writer) -> None:
    await _head(writer)
    await _send(writer, _chunk({"role": "assistant", "content": "x" * 1_000_000}))
    await _finish(writer)


async def _multiline(writer: Writer) -> None:
    await _head(writer)
    event = json.dumps(_json_chunk({"role": "assistant", "content": "multi line"}), indent=1).encode()
    lines = b"".join(b"data: " + line + b"\r\n" for line in event.split(b"\n"))
    await _send(writer, lines + b"\r\n")
    for piece in (
        b"da",
        b"ta: ",
        json.dumps(_json_chunk({}, "stop")).encode(),
        b"\r",
        b"\n\r\n",
        b"data: [DONE]\r\n\r\n",
    ):
        await _send(writer, piece)
        await asyncio.sleep(0.01)


def _json_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return json.loads(_chunk(delta, finish)[6:])


async def _slow_with_keepalives(writer: Writer) -> None:
    """Data every 0.3 s with keep-alives between, 3 s in all (longer than the suite's 2.5 s timeout, each gap far
    shorter): must complete."""
    await _head(writer)
    for n in range(10):
        await _send(writer, _chunk({"role": "assistant", "content": f"s{n} "}))
        for _ in range(3):
            await asyncio.sleep(0.1)
            await _send(writer, b": keep-alive\n\n")
    await _finish(writer)


async def _slow_ok(writer: Writer) -> None:
    """Ten chunks over ~2 s: long enough to disconnect from, or to pause DynamoDB under."""
    await _head(writer)
    for n in range(10):
        await _send(writer, _chunk({"role": "assistant", "content": f"w{n} "}))
        await asyncio.sleep(0.2)
    await _finish(writer)


CASES: dict[str, Callable[[Writer], Awaitable[None]]] = {
    "ok": _ok,
    "status_500": _status(500, _error("upstream exploded")),
    "status_503": _status(503, _error("overloaded")),
    "status_502_html": _status(502, "<html><body>Bad Gateway</body></html>"),
    "status_404_model": _status(404, _error("The model 'x' does not exist", "model_not_found")),
    "status_429": _status(429, _error("Rate limit reached", "rate_limit_exceeded"), "retry-after: 7\r\n"),
    "status_400_code": _status(400, _error("Too many tokens", "context_length_exceeded")),
    "status_401": _status(401, _error("Incorrect API key provided", "invalid_api_key")),
    "status_403": _status(403, "forbidden"),
    "keepalive_only": _keepalive_only,
    "silent_after_data": _silent_after_data,
    "hang": _hang,
    "cut_headers": _cut_headers,
    "cut_midstream": _cut_midstream,
    "garbage": _garbage,
    "wrong_shape": _wrong_shape,
    "error_event": _error_event,
    "no_finish": _no_finish,
    "huge_chunk": _huge,
    "multiline_crlf": _multiline,
    "slow_with_keepalives": _slow_with_keepalives,
    "slow_ok": _slow_ok,
}


async def _tool_call(writer: Writer, name: str, arguments: str) -> None:
    await _head(writer)
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    await _send(writer, _chunk({"role": "assistant", "tool_calls": [call]}))
    await _send(writer, _chunk({}, "tool_calls") + _USAGE + b"data: [DONE]\n\n")


async def _read_request(reader: asyncio.StreamReader) -> dict[str, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return dict(json.loads(await reader.readexactly(length))) if length else {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


async def _handle(reader: asyncio.StreamReader, writer: Writer) -> None:
    try:
        body = await _read_request(reader)
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            await _ok(writer, f"tool done: {_text(last.get('content'))[:200]}")
            return
        user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = _text(user.get("content"))
        if call := re.search(r"CALL (\S+) (\{.*\})", text):
            await _tool_call(writer, call.group(1), call.group(2))
            return
        match = _CHAOS.search(text)
        await CASES.get(match.group(1) if match else "ok", _ok)(writer)
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass
    finally:
        with suppress(Exception):
            writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port, limit=2**20)
    async with server:
        await server.serve_forever()


@contextmanager
def serve_chaos() -> Iterator[str]:
    """Run the chaos upstream in a child process on 127.0.0.1 (its timing must not depend on the GIL of the
    process driving the suite); yield its base URL (``http://127.0.0.1:P/v1``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "local.chaos_upstream", "--port", str(port)], cwd=_ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the chaos upstream did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The chaos Chat Completions upstream of the fault suite.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
