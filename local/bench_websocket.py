"""``make bench``'s WebSocket section: one 20-tool-call agent run over WebSocket mode against the same run over HTTP
with ``previous_response_id``, interleaved, on the same local stack and scripted upstream.

An agent run is 21 model turns: the first asks for ``lookup``; each of the next 20 sends the tool's output for the
previous call plus a user message (the scripted model calls a tool only when the conversation ends with a user
message), and the last ends with a plain answer. Every turn streams and continues the previous response:

- HTTP: a new keep-alive connection per run; each turn ``POST /v1/responses`` (``stream: true``, ``store`` true, as
  ``previous_response_id`` over HTTP needs), the response id and call id read from ``response.completed``.
- WebSocket: a new connection per run (the upgrade is in the time); each turn one ``response.create`` message,
  ``store`` true, then again with ``store: false`` (the connection-local state is the only copy).

Reported: the run's wall time (p50/p99 over the runs), its per-turn median, and WebSocket / HTTP as a ratio.
Standalone: ``PYTHONPATH=layers/engine:. .venv/bin/python -m local.bench_websocket [--runs 8]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.sync.client import connect

__all__ = ["agent_runs"]

TOOL = {
    "type": "function",
    "name": "lookup",
    "description": "Look a value up.",
    "parameters": {"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]},
}
CALLS = 20
AUTH = "Bearer sk-bench"


def _turn_input(turn: int, call_id: str | None) -> Any:
    if call_id is None:
        return 'CALL lookup {"i": 0}'
    nudge = f'CALL lookup {{"i": {turn}}}' if turn < CALLS else "REPLY done"
    return [
        {"type": "function_call_output", "call_id": call_id, "output": json.dumps({"value": turn})},
        {"type": "message", "role": "user", "content": nudge},
    ]


def _call_id(response: dict[str, Any]) -> str | None:
    return next((item["call_id"] for item in response["output"] if item["type"] == "function_call"), None)


class _Http:
    """Streamed POSTs over one raw keep-alive HTTP/1.1 connection (no HTTP library in the figures)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.prefix = parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/")
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        head = (
            f"POST {self.prefix}/responses HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json"
            f"\r\nAuthorization: {AUTH}\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + data)
        while b"\r\n0\r\n\r\n" not in self.buf:  # the chunked SSE body's last chunk
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("closed mid-response")
            self.buf += chunk
        body_end = self.buf.index(b"\r\n0\r\n\r\n") + 7
        raw, self.buf = self.buf[:body_end], self.buf[body_end:]
        marker = b"event: response.completed\ndata: "
        at = raw.rfind(marker)
        if at < 0:
            raise RuntimeError(f"no response.completed in the stream: {raw[-300:]!r}")
        line = raw[at + len(marker) : raw.index(b"\n", at + len(marker))]
        return dict(json.loads(line)["response"])

    def close(self) -> None:
        self.sock.close()


def http_run(base_url: str) -> list[float]:
    """One agent run over HTTP; the wall time of each turn (ms)."""
    client, turns, previous, call_id = _Http(base_url), [], None, None
    try:
        for turn in range(CALLS + 1):
            started = time.perf_counter()
            body = {"model": "scripted", "input": _turn_input(turn, call_id), "tools": [TOOL], "stream": True}
            if previous:
                body["previous_response_id"] = previous
            response = client.create(body)
            turns.append((time.perf_counter() - started) * 1000)
            previous, call_id = response["id"], _call_id(response)
    finally:
        client.close()
    return turns


def websocket_run(base_url: str, *, store: bool) -> list[float]:
    """One agent run over WebSocket mode; the wall time of each turn (ms), the upgrade counted in the first."""
    url = base_url.replace("http://", "ws://", 1) + "/responses"
    turns: list[float] = []
    previous, call_id = None, None
    started = time.perf_counter()
    with connect(url, additional_headers={"Authorization": AUTH}, compression=None) as ws:
        for turn in range(CALLS + 1):
            message: dict[str, Any] = {"type": "response.create", "model": "scripted", "tools": [TOOL]}
            message.update(input=_turn_input(turn, call_id), store=store)
            if previous:
                message["previous_response_id"] = previous
            ws.send(json.dumps(message))
            while True:
                event = json.loads(ws.recv(timeout=30))
                if event["type"] == "response.completed":
                    break
                if event["type"] in ("error", "response.failed"):
                    raise RuntimeError(f"turn {turn} failed: {event}")
            turns.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            previous, call_id = event["response"]["id"], _call_id(event["response"])
    return turns


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def agent_runs(base_url: str, runs: int = 8) -> dict[str, dict[str, float]]:
    """``runs`` agent runs per side, interleaved after one warm-up each: per side the run's p50/p99 wall time (ms)
    and the median turn (ms)."""
    sides: dict[str, Callable[[], list[float]]] = {
        "http": lambda: http_run(base_url),
        "websocket": lambda: websocket_run(base_url, store=True),
        "websocket_store_false": lambda: websocket_run(base_url, store=False),
    }
    for run in sides.values():
        run()
    totals: dict[str, list[float]] = {side: [] for side in sides}
    turns: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(runs):
        for side, run in sides.items():
            times = run()
            totals[side].append(sum(times))
            turns[side].extend(times)
    return {
        side: {
            "runs": float(len(totals[side])),
            "p50": _pct(totals[side], 0.5),
            "p99": _pct(totals[side], 0.99),
            "turn_p50": statistics.median(turns[side]),
        }
        for side in sides
    }


def main() -> int:
    from local.scripted_upstream import UpstreamConfig, serve_process
    from local.stack import running_stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    with serve_process(UpstreamConfig(model="scripted")) as upstream:
        with running_stack(upstream_base_url=upstream) as stack:
            result = agent_runs(stack, args.runs)
    for side, f in result.items():
        print(f"{side:24} run p50 {f['p50']:8.1f} ms  p99 {f['p99']:8.1f} ms  turn {f['turn_p50']:.2f} ms")
    print(f"websocket/http p50: {result['websocket']['p50'] / result['http']['p50']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
