"""``make bench``: the full local stack against the bare scripted upstream, side by side, on this machine.

Method (see ``shared/notes/performance.md``). Loopback upstreams answer in ~0.1 ms, so ratios would explode: the bench
reports *added* milliseconds, measured against the same scripted upstream called directly in the same run, with
direct and stack requests interleaved so machine drift hits both alike. Added = p(stack) - p(direct), per percentile.

* One scripted upstream process (``UpstreamConfig(chunks=50)``: every plain reply is exactly 50 content chunks) and one
  local stack process (API Gateway emulation + the real handlers + moto DynamoDB) pointed at it; both are warmed up.
  Their own output goes to ``--server-log``; the report counts the errors they logged.
* **c=1 streams**: direct ``POST /chat/completions`` (``stream: true``, the body the engine sends) alternating with
  ``POST /responses`` (``stream: true``), same input text, each side over its own raw-socket HTTP/1.1 keep-alive
  connection (a small client in this file: no HTTP library in the numbers; GC off while timing). TTFB = send -> the
  ``recv`` that delivered the first content chunk (direct: first ``data:`` whose ``choices[0].delta.content`` is
  non-empty; stack: first ``event: response.output_text.delta``); total = send -> end of the chunked body.
* **c=1 non-streaming create**: direct ``stream: false`` chat completion alternating with a JSON ``POST /responses``
  (``store`` left to its default, true: the time includes the DynamoDB write on moto); plus the median
  ``x-overhead-ms`` header (the server's own time: wall minus the upstream wait).
* Both c=1 loops also send a third, ``store: false``, stack request each round: the same path without the write,
  which separates the engine's cost from the local DynamoDB emulation's.
* **c=50 streams**: the input carries ``TTFT 20 SLOW 2`` (upstream: 20 ms to the first byte, 2 ms per chunk); an
  asyncio + aiohttp load generator (httpx collapses under concurrency, encode/httpx#3215), 50 workers, a fixed number
  of requests per phase (at most ``--phase-seconds`` each): direct, stack with ``store: false``, direct again (the two
  direct runs show drift and are pooled), then the stack with ``store`` at its default (last, because the DynamoDB
  emulation may leave the stack process slow). Errors = non-200, broken streams, a missing terminal event
  (``[DONE]`` / ``response.completed``) or a content-chunk count other than 50. CPU per request of each server
  process and the stack's peak RSS come from ``/proc``.
* **WebSocket mode**: a 20-tool-call agent run (21 streamed turns, each continuing the last) over WebSocket mode
  (``store`` true, then false) against the same run over HTTP with ``previous_response_id``, interleaved; run wall
  time p50/p99, median turn, and the ratio WebSocket / HTTP (``local/bench_websocket.py``).
* **Upstream HTTP client**: aiohttp ``ClientSession`` vs ``httpx.AsyncClient(limits=Limits(max_connections=100))`` as
  clients of the scripted upstream, the same c=50 workload and count: the figure behind the engine's choice of aiohttp.
* **Handler import**: every function of ``template.yaml`` imported by file path in a fresh interpreter
  (``PYTHONPATH=layers/engine``, ``AWS_DEFAULT_REGION=us-east-1``), one unmeasured run to warm ``.pyc``, then
  ``--import-runs`` measured: median import ms and peak RSS (``VmHWM``; ``ru_maxrss`` survives ``exec`` on Linux and
  would report this process's peak). References: a bare interpreter, and ``import boto3; boto3.client('dynamodb')``.

The bench is a report, not a test: it exits 0 whether or not goals are met (1 only when the servers cannot start) and
prints how many goals were met. Run ``make bench``, or
``PYTHONPATH=layers/engine:. .venv/bin/python -m local.bench [--n 200] [--concurrent-requests 500] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import httpx

from local.scripted_upstream import UpstreamConfig, serve_process
from local.sse import SseParser, frames
from local.stack import running_stack
from local.template import load_template

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
MODEL = "scripted"
CHUNKS = 50
INPUT_C1 = "bench"
INPUT_C50 = "bench TTFT 20 SLOW 2"
AUTH = "Bearer sk-bench"

Kind = Literal["chat", "responses"]


# --------------------------------------------------------------------------------------------------------------------
# Request bodies


def chat_body(text: str, *, stream: bool) -> bytes:
    """What the engine sends upstream for a one-message input (``stream_options`` only when streaming)."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def responses_body(text: str, *, stream: bool, store: bool | None = None) -> bytes:
    """A ``POST /responses`` body; ``store`` is left out (the default, true) unless given."""
    body: dict[str, Any] = {"model": MODEL, "input": text, "stream": stream}
    if store is not None:
        body["store"] = store
    return json.dumps(body).encode()


# --------------------------------------------------------------------------------------------------------------------
# Stream watching (shared by every client so all sides do the same client-side work)


class SSEWatch:
    """Fed body bytes as they arrive; records when the first content chunk arrived and whether the stream finished."""

    __slots__ = ("kind", "first", "deltas", "terminal", "_parser")

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.first: float | None = None
        self.deltas = 0
        self.terminal = False
        self._parser = SseParser()

    def feed(self, data: bytes, at: float) -> None:
        for frame in self._parser.feed(data):
            if self.kind == "responses":
                if frame.event == "response.output_text.delta":
                    self.deltas += 1
                    if self.first is None:
                        self.first = at
                elif frame.event == "response.completed":
                    self.terminal = True
                continue
            payload = frame.data
            if payload == "[DONE]":
                self.terminal = True
            elif self.first is None:
                choices = json.loads(payload).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    self.first = at
                    self.deltas += 1
            elif '"content":"' in payload and '"content":""' not in payload:
                self.deltas += 1

    def problem(self) -> str | None:
        """Why the stream is not a complete, well-formed answer (``None`` when it is)."""
        if not self.terminal:
            return "no terminal event"
        if self.deltas != CHUNKS:
            return f"{self.deltas} content chunks"
        return None


@dataclass(slots=True)
class Sample:
    ttfb_ms: float | None = None
    total_ms: float | None = None
    error: str | None = None
    overhead_ms: float | None = None


# --------------------------------------------------------------------------------------------------------------------
# c=1: a raw-socket HTTP/1.1 keep-alive client


class RawClient:
    """Just enough HTTP/1.1 for these servers: POST, keep-alive, content-length or chunked bodies."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._at = 0.0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    def _recv(self) -> None:
        assert self._sock is not None
        data = self._sock.recv(262144)
        self._at = time.perf_counter()
        if not data:
            raise ConnectionError("connection closed mid-response")
        self._buf += data

    def post(self, path: str, body: bytes, watch: SSEWatch | None = None) -> Sample:
        """Send one request; time to the first content chunk (when ``watch``) and to the end of the body."""
        request = (
            f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: {AUTH}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            if self._sock is None:
                self._sock = socket.create_connection((self.host, self.port))
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            self._sock.sendall(request)
            status, headers, payload = self._read_response(watch)
        except OSError as exc:
            self.close()
            return Sample(error=type(exc).__name__)
        ended = self._at
        if headers.get("connection", "").lower() == "close":
            self.close()
        sample = Sample(total_ms=(ended - started) * 1000)
        if "x-overhead-ms" in headers:
            sample.overhead_ms = float(headers["x-overhead-ms"])
        if status != 200:
            sample.error = f"HTTP {status}"
        elif watch is not None:
            sample.error = watch.problem()
            if watch.first is not None:
                sample.ttfb_ms = (watch.first - started) * 1000
        elif not payload:
            sample.error = "empty body"
        return sample

    def _read_response(self, watch: SSEWatch | None) -> tuple[int, dict[str, str], bytes]:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(self._buf) < size:
                self._recv()
            payload = bytes(self._buf[:size])
            del self._buf[:size]
            if watch is not None:
                watch.feed(payload, self._at)
            return status, headers, payload
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise ConnectionError("neither content-length nor chunked")
        parts: list[bytes] = []
        pos = 0
        while True:
            fresh: list[bytes] = []
            done = False
            while (eol := self._buf.find(b"\r\n", pos)) >= 0:
                size = int(bytes(self._buf[pos:eol]).split(b";")[0], 16)
                if size == 0:
                    if len(self._buf) < eol + 4:
                        break
                    pos, done = eol + 4, True
                    break
                if len(self._buf) < eol + 2 + size + 2:
                    break
                fresh.append(bytes(self._buf[eol + 2 : eol + 2 + size]))
                pos = eol + 2 + size + 2
            if fresh:
                data = b"".join(fresh)
                parts.append(data)
                if watch is not None:
                    watch.feed(data, self._at)
            if done:
                del self._buf[:pos]
                return status, headers, b"".join(parts)
            self._recv()


# --------------------------------------------------------------------------------------------------------------------
# c=50: asyncio load generator


async def aiohttp_stream(session: aiohttp.ClientSession, url: str, body: bytes, kind: Kind) -> Sample:
    watch = SSEWatch(kind)
    started = time.perf_counter()
    try:
        async with session.post(
            url, data=body, headers={"content-type": "application/json", "authorization": AUTH}
        ) as r:
            if r.status != 200:
                await r.read()
                return Sample(error=f"HTTP {r.status}")
            async for data in r.content.iter_any():
                watch.feed(data, time.perf_counter())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Sample(error=type(exc).__name__)
    return _stream_sample(watch, started)


async def httpx_stream(client: httpx.AsyncClient, url: str, body: bytes, kind: Kind) -> Sample:
    watch = SSEWatch(kind)
    started = time.perf_counter()
    try:
        headers = {"content-type": "application/json", "authorization": AUTH}
        async with client.stream("POST", url, content=body, headers=headers) as r:
            if r.status_code != 200:
                await r.aread()
                return Sample(error=f"HTTP {r.status_code}")
            async for data in r.aiter_raw():
                watch.feed(data, time.perf_counter())
    except httpx.HTTPError as exc:
        return Sample(error=type(exc).__name__)
    return _stream_sample(watch, started)


def _stream_sample(watch: SSEWatch, started: float) -> Sample:
    ended = time.perf_counter()
    ttfb = (watch.first - started) * 1000 if watch.first is not None else None
    return Sample(ttfb_ms=ttfb, total_ms=(ended - started) * 1000, error=watch.problem())


@dataclass(slots=True)
class Phase:
    label: str
    samples: list[Sample]
    wall_s: float
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds used during the phase

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)

    @property
    def rate(self) -> float:
        return len(self.ok) / self.wall_s

    def ttfb(self) -> list[float]:
        return [s.ttfb_ms for s in self.ok if s.ttfb_ms is not None]


async def run_phase(
    label: str, n: int, concurrency: int, one: Callable[[], Awaitable[Sample]], budget_s: float = float("inf")
) -> Phase:
    """``n`` requests by ``concurrency`` workers, each sending its next request as soon as the last one ends.

    No request starts after ``budget_s`` seconds (a collapsing server must not stall the bench), so a phase may end
    with fewer than ``n`` samples; the rows show the real count.
    """
    samples: list[Sample] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            samples.append(await one())

    started = time.perf_counter()
    deadline = started + budget_s
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Phase(label, samples, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------------------------------
# Child processes: CPU time and peak RSS from /proc


def _children() -> dict[str, int]:
    """pid of our child processes by role (``upstream`` / ``stack`` / ``moto``), from /proc (empty without /proc)."""
    found: dict[str, int] = {}
    try:
        tids = os.listdir(f"/proc/{os.getpid()}/task")
        pids = {int(p) for t in tids for p in Path(f"/proc/{os.getpid()}/task/{t}/children").read_text().split()}
        for pid in pids:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"local.scripted_upstream" in cmd:
                found["upstream"] = pid
            elif b"local.serve" in cmd:
                found["stack"] = pid
                # the stack's own child: moto, the DynamoDB emulation (a deployment has no such local cost)
                for task in os.listdir(f"/proc/{pid}/task"):
                    for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                        if b"local.moto_server" in Path(f"/proc/{child}/cmdline").read_bytes():
                            found["moto"] = int(child)
    except OSError:
        pass
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for role, pid in pids.items():
        try:
            out[role] = _cpu_seconds(pid)
        except OSError:
            pass
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before[role] for role in before if role in after}


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------------------------------------------------
# Statistics and the report table


def pct(values: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(slots=True)
class Goal:
    stat: Literal["p50", "p99"]
    op: Literal["<=", ">="]
    limit: float

    def met(self, row: Row) -> bool:
        value = row.p50 if self.stat == "p50" else row.p99
        if value is None or value != value:
            return False
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def text(self, unit: str, only: bool) -> str:
        prefix = "" if only else f"{self.stat} "
        return f"{prefix}{'≤' if self.op == '<=' else '≥'}{self.limit:g}{unit}"


@dataclass(slots=True)
class Row:
    metric: str
    n: int | None
    p50: float | None
    p99: float | None = None
    goals: list[Goal] = field(default_factory=list)
    unit: str = ""
    section: str = ""

    def goal_text(self) -> str:
        only = len(self.goals) == 1 and self.p99 is None
        return ", ".join(g.text(self.unit, only) for g in self.goals)

    def verdict(self) -> str:
        if not self.goals:
            return ""
        return "✓" if all(g.met(self) for g in self.goals) else "✗"


def le(limit: float, stat: Literal["p50", "p99"] = "p50") -> Goal:
    return Goal(stat, "<=", limit)


def ge(limit: float, stat: Literal["p50", "p99"] = "p50") -> Goal:
    return Goal(stat, ">=", limit)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value != value:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(rows: list[Row]) -> str:
    header = ("metric", "n", "p50", "p99", "goal", "meets?")
    cells = [header] + [
        (r.metric, "" if r.n is None else str(r.n), _fmt(r.p50), _fmt(r.p99), r.goal_text(), r.verdict()) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines: list[str] = []
    section = None
    for index, cell in enumerate(cells):
        if index and rows[index - 1].section != section:
            section = rows[index - 1].section
            lines.append(f"-- {section} " + "-" * max(0, sum(widths) + 3 * (len(widths) - 1) - len(section) - 4))
        parts = [cell[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cell[1:4], widths[1:4], strict=True)]
        parts += [cell[4].ljust(widths[4]), cell[5]]
        lines.append(" | ".join(parts).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _ok(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.error is None]


def _ttfb(samples: list[Sample]) -> list[float]:
    return [s.ttfb_ms for s in samples if s.ttfb_ms is not None]


def _total(samples: list[Sample]) -> list[float]:
    return [s.total_ms for s in samples if s.total_ms is not None]


def latency_rows(
    section: str, what: str, direct: list[float], stack: list[float], goals: list[Goal], *, only_added: bool = False
) -> list[Row]:
    """direct / stack / added rows; added is computed per percentile: p(stack) - p(direct)."""
    n = min(len(direct), len(stack))
    rows = [
        Row(f"{what} direct (ms)", len(direct), pct(direct, 0.5), pct(direct, 0.99), section=section),
        Row(f"{what} stack (ms)", len(stack), pct(stack, 0.5), pct(stack, 0.99), section=section),
    ]
    return ([] if only_added else rows) + [
        Row(
            f"{what} added (ms)",
            n,
            pct(stack, 0.5) - pct(direct, 0.5),
            pct(stack, 0.99) - pct(direct, 0.99),
            goals,
            unit=" ms",
            section=section,
        ),
    ]


# --------------------------------------------------------------------------------------------------------------------
# The sections


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Bench:
    upstream: str
    stack: str
    args: argparse.Namespace
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def warm_up(self) -> None:
        direct, stack = RawClient(self.upstream), RawClient(self.stack)
        failures = 0
        for _ in range(self.args.warmup):
            for stream in (True, False):
                a = direct.post(
                    "/chat/completions", chat_body(INPUT_C1, stream=stream), SSEWatch("chat") if stream else None
                )
                b = stack.post(
                    "/responses", responses_body(INPUT_C1, stream=stream), SSEWatch("responses") if stream else None
                )
                failures += (a.error is not None) + (b.error is not None)
        direct.close()
        stack.close()
        if failures:
            self.notes.append(f"warm-up: {failures} failed requests")

    def c1(self, stream: bool) -> tuple[dict[str, list[Sample]], dict[str, float]]:
        """Alternate direct, stack and stack-with-``store: false`` requests, one keep-alive connection each."""
        clients = {"direct": RawClient(self.upstream), "stack": RawClient(self.stack), "nostore": RawClient(self.stack)}
        bodies: dict[str, tuple[str, bytes, Kind]] = {
            "direct": ("/chat/completions", chat_body(INPUT_C1, stream=stream), "chat"),
            "stack": ("/responses", responses_body(INPUT_C1, stream=stream), "responses"),
            "nostore": ("/responses", responses_body(INPUT_C1, stream=stream, store=False), "responses"),
        }
        out: dict[str, list[Sample]] = {side: [] for side in clients}
        gc.collect()
        gc.disable()
        before = cpu_snapshot(self.pids)
        try:
            for _ in range(self.args.n):
                for side, (path, body, kind) in bodies.items():
                    watch = SSEWatch(kind) if stream else None
                    out[side].append(clients[side].post(path, body, watch))
        finally:
            gc.enable()
            for client in clients.values():
                client.close()
        for side, samples in out.items():
            bad = [s.error for s in samples if s.error is not None]
            if bad:
                what = "streams" if stream else "create"
                self.notes.append(f"c=1 {what} {side}: {len(bad)} errors, e.g. {sorted(set(map(str, bad)))[:3]}")
        return out, cpu_delta(before, cpu_snapshot(self.pids))

    def streams_c1(self) -> None:
        section = f"c=1 streams, {CHUNKS} chunks, no upstream delay"
        log(section)
        out, cpu = self.c1(stream=True)
        d, s, ns = (_ok(out[side]) for side in ("direct", "stack", "nostore"))
        self.rows += latency_rows(section, "TTFB", _ttfb(d), _ttfb(s), [le(3), le(10, "p99")])
        self.rows += latency_rows(section, "total", _total(d), _total(s), [le(5)])
        self.rows += latency_rows(section, "total store=false", _total(d), _total(ns), [], only_added=True)
        header = [x.overhead_ms for x in s if x.overhead_ms is not None]
        if header:
            self.rows.append(
                Row("x-overhead-ms header (ms)", len(header), pct(header, 0.5), pct(header, 0.99), section=section)
            )
        self._cpu_rows(section, cpu, out)

    def mcp_c1(self) -> None:
        """What one MCP tool call adds to a response: list the server's tools, run the call, one more model turn."""
        from .mcp_servers import mcp_server

        section = "c=1 MCP tool loop (MCPServer, streamable HTTP, loopback; store=false on both sides)"
        log(section)
        n = max(10, self.args.n // 4)
        plain = json.dumps({"model": MODEL, "input": INPUT_C1, "store": False}).encode()
        with mcp_server("streamable-http") as url:
            tool = {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": "never"}
            with_mcp = json.dumps(
                {"model": MODEL, "input": 'CALL add {"a": 2, "b": 3}', "tools": [tool], "store": False}
            ).encode()
            client = RawClient(self.stack)
            samples: dict[str, list[Sample]] = {"plain": [], "mcp": []}
            try:
                for _ in range(3):  # the first MCP request in the process imports mcp (~1 s): keep it out
                    client.post("/responses", with_mcp)
                for _ in range(n):
                    samples["plain"].append(client.post("/responses", plain))
                    samples["mcp"].append(client.post("/responses", with_mcp))
            finally:
                client.close()
        bad = [str(x.error) for side in samples.values() for x in side if x.error is not None]
        if bad:
            self.notes.append(f"MCP c=1: {len(bad)} errors, e.g. {sorted(set(bad))[:3]}")
        plain_ms, mcp_ms = _total(_ok(samples["plain"])), _total(_ok(samples["mcp"]))
        self.rows += [
            Row("create, no tools (ms)", len(plain_ms), pct(plain_ms, 0.5), pct(plain_ms, 0.99), section=section),
            Row("create, one MCP call (ms)", len(mcp_ms), pct(mcp_ms, 0.5), pct(mcp_ms, 0.99), section=section),
            Row(
                "MCP loop added: list + call + 1 more model turn (ms)",
                min(len(plain_ms), len(mcp_ms)),
                pct(mcp_ms, 0.5) - pct(plain_ms, 0.5),
                pct(mcp_ms, 0.99) - pct(plain_ms, 0.99),
                section=section,
            ),
        ]

    def websocket_agent(self) -> None:
        """A 20-tool-call agent run over WebSocket mode vs the same run over HTTP with previous_response_id."""
        from .bench_websocket import CALLS, agent_runs

        section = f"{CALLS}-tool-call agent run (21 streamed turns): WebSocket mode vs HTTP + previous_response_id"
        log(section)
        result = agent_runs(self.stack, runs=max(4, self.args.n // 25))
        self.raw["websocket_agent"] = result
        labels = {
            "http": "HTTP (SSE), store=true",
            "websocket": "WebSocket, store=true",
            "websocket_store_false": "WebSocket, store=false",
        }
        for side, label in labels.items():
            figures = result[side]
            runs = int(figures["runs"])
            self.rows.append(Row(f"run, {label} (ms)", runs, figures["p50"], figures["p99"], section=section))
            self.rows.append(
                Row(f"median turn, {label} (ms)", runs * (CALLS + 1), figures["turn_p50"], section=section)
            )
        for side in ("websocket", "websocket_store_false"):
            ratio = result[side]["p50"] / result["http"]["p50"]
            self.rows.append(Row(f"run p50, {labels[side]} / HTTP (ratio)", None, ratio, section=section))

    def file_search(self) -> None:
        """Ingestion throughput into a 10,000-chunk store, and search latency over it: hybrid vs vector-only vs
        keyword-only (local/bench_file_search.py)."""
        from .bench_file_search import file_search_bench

        section = "file_search: 10,000-chunk store (moto S3 + Step Functions, in-process index, scripted embeddings)"
        log(section)
        result = file_search_bench(self.stack, queries=max(50, self.args.n))
        self.raw["file_search"] = result
        self.rows.append(
            Row("ingestion throughput (chunks/s)", result["chunks"], result["chunks_per_second"], section=section)
        )
        self.rows.append(
            Row("first search, builds the store's index (ms)", 1, result["first_search_ms"], section=section)
        )
        for name, values in result["search_ms"].items():
            self.rows.append(
                Row(f"search, {name} (ms)", len(values), pct(values, 0.5), pct(values, 0.99), section=section)
            )
        hybrid, vector = result["search_ms"]["hybrid"], result["search_ms"]["vector only"]
        self.rows.append(
            Row("search p50, hybrid / vector only (ratio)", None, pct(hybrid, 0.5) / pct(vector, 0.5), section=section)
        )

    def background(self) -> None:
        """Cancel: from the cancel request to the upstream stream being closed; replay: events/s from storage."""
        import httpx

        section = "background runs (Step Functions on moto, worker in process)"
        log(section)
        root = self.upstream.removesuffix("/v1")
        cancel_ms: list[float] = []
        closed_ms: list[float] = []
        with httpx.Client(base_url=self.stack, timeout=30) as http:
            for _ in range(8):
                body = {"model": MODEL, "input": "SLOW 50\nbench", "background": True}
                response_id = http.post("/responses", json=body).json()["id"]
                deadline = time.monotonic() + 10
                while httpx.get(f"{root}/_stats").json()["in_flight"] == 0 and time.monotonic() < deadline:
                    time.sleep(0.005)  # until the worker's upstream stream is open
                time.sleep(0.3)
                started = time.perf_counter()
                answer = http.post(f"/responses/{response_id}/cancel").json()
                cancel_ms.append((time.perf_counter() - started) * 1000)
                if answer.get("status") != "cancelled":
                    self.notes.append(f"background cancel: status {answer.get('status')}")
                while httpx.get(f"{root}/_stats").json()["in_flight"] and time.monotonic() < deadline:
                    time.sleep(0.002)
                closed_ms.append((time.perf_counter() - started) * 1000)
            body = {"model": MODEL, "input": "bench", "background": True}
            response_id = http.post("/responses", json=body).json()["id"]
            while http.get(f"/responses/{response_id}").json()["status"] in ("queued", "in_progress"):
                time.sleep(0.02)
            rates: list[float] = []
            for _ in range(10):
                started = time.perf_counter()
                with http.stream("GET", f"/responses/{response_id}", params={"stream": "true"}) as stream:
                    events = sum(1 for frame in frames(stream.iter_lines()) if frame.event)
                rates.append(events / (time.perf_counter() - started))
        self.rows += [
            Row(
                "cancel request latency (ms)",
                len(cancel_ms),
                pct(cancel_ms, 0.5),
                pct(cancel_ms, 0.99),
                section=section,
            ),
            Row(
                "cancel → upstream stream closed (ms)",
                len(closed_ms),
                pct(closed_ms, 0.5),
                pct(closed_ms, 0.99),
                section=section,
            ),
            Row(f"replay of {events} stored events (events/s)", len(rates), pct(rates, 0.5), section=section),
        ]

    def authorizer(self) -> None:
        """The REST authorizer, warm, against the stack's DynamoDB (moto): one GetItem per call, as deployed;
        its cold start is its import (in the handler import section) plus the first call, shown here."""
        import httpx

        from engine.auth import display_suffix, generate_key, hash_key
        from engine.storage import get_key_store
        from engine.storage.keys import KeyRecord

        from .gateway import LambdaContext, _load_module

        section = "authorizer (REQUEST event, one GetItem on moto per call; API Gateway caches answers)"
        log(section)
        health = httpx.get(self.stack.removesuffix("/v1") + "/_local/health").json()
        os.environ.update(
            {"AWS_ENDPOINT_URL": health["aws_endpoint_url"], "TABLE_NAME": health["table_name"],
             "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
             "AUTH_MODE": "keys", "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true"}
        )  # fmt: skip
        key = generate_key()
        get_key_store(health["table_name"]).add(
            KeyRecord(hash_key(key), "bench", "active", int(time.time()), display_suffix(key))
        )
        spec = load_template().functions["AuthorizerFunction"]
        handler = _load_module(spec, "app").lambda_handler
        event = json.loads((Path(__file__).resolve().parent.parent / "events" / "authorizer.json").read_text())
        event["headers"]["Authorization"] = f"Bearer {key}"
        context = LambdaContext(function_name="AuthorizerFunction", aws_request_id="bench")
        started = time.perf_counter()
        first = handler(event, context)
        first_ms = (time.perf_counter() - started) * 1000
        warm: list[float] = []
        for _ in range(200):
            started = time.perf_counter()
            answer = handler(event, context)
            warm.append((time.perf_counter() - started) * 1000)
        allowed = (
            answer["policyDocument"]["Statement"][0]["Effect"]
            == first["policyDocument"]["Statement"][0]["Effect"]
            == "Allow"
        )
        if not allowed:
            self.notes.append("authorizer: the bench key was not allowed")
        self.rows += [
            Row("first call, boto3 already imported (client + GetItem) (ms)", 1, first_ms, section=section),
            Row("warm call, key allowed (ms)", len(warm), pct(warm, 0.5), pct(warm, 0.99), section=section),
        ]

    def create_c1(self) -> None:
        section = "c=1 non-streaming create (store=true writes to moto DynamoDB)"
        log(section)
        out, cpu = self.c1(stream=False)
        d, s, ns = (_ok(out[side]) for side in ("direct", "stack", "nostore"))
        self.rows += latency_rows(section, "create", _total(d), _total(s), [le(8)])
        self.rows += latency_rows(section, "create store=false", _total(d), _total(ns), [le(3)], only_added=True)
        for label, samples in (("", s), (" store=false", ns)):
            header = [x.overhead_ms for x in samples if x.overhead_ms is not None]
            if header:
                self.rows.append(
                    Row(
                        f"x-overhead-ms header{label} (ms)",
                        len(header),
                        pct(header, 0.5),
                        pct(header, 0.99),
                        section=section,
                    )
                )
            else:
                self.notes.append(f"non-streaming create{label}: no x-overhead-ms header in the stack's answers")
        self._cpu_rows(section, cpu, out)

    def _cpu_rows(self, section: str, cpu: dict[str, float], out: dict[str, list[Sample]]) -> None:
        """CPU per request of each server process (the stack's covers its store=true and store=false requests)."""
        counts = {
            "upstream": len(out["direct"]) + len(out["stack"]) + len(out["nostore"]),
            "stack": len(out["stack"]) + len(out["nostore"]),
            "moto": len(out["stack"]),  # only store=true requests write
        }
        for role in ("upstream", "stack", "moto"):
            if role in cpu and counts[role]:
                self.rows.append(
                    Row(
                        f"{role} process CPU / request (ms)",
                        counts[role],
                        cpu[role] * 1000 / counts[role],
                        section=section,
                    )
                )

    async def _aiohttp_phases(self, plan: list[tuple[str, str, bytes, Kind]]) -> list[Phase]:
        c, n = self.args.concurrency, self.args.concurrent_requests
        connector = aiohttp.TCPConnector(limit=100)
        timeout = aiohttp.ClientTimeout(total=120)
        phases: list[Phase] = []
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for label, url, body, kind in plan:

                def one(url: str = url, body: bytes = body, kind: Kind = kind) -> Awaitable[Sample]:
                    return aiohttp_stream(session, url, body, kind)

                log(f"  {label}")
                gc.collect()
                before = cpu_snapshot(self.pids)
                count = min(n, 2 * c) if label.startswith("warm-up") else n
                phase = await run_phase(label, count, c, one, self.args.phase_seconds)
                if len(phase.samples) < count:
                    self.notes.append(
                        f"c={c} {label}: stopped after {self.args.phase_seconds:g} s with {len(phase.samples)} of "
                        f"{count} requests sent (--phase-seconds)"
                    )
                phase.cpu = cpu_delta(before, cpu_snapshot(self.pids))
                phases.append(phase)
        return phases

    def streams_c50(self) -> None:
        c = self.args.concurrency
        section = f"c={c} streams, upstream TTFT 20 ms + 2 ms/chunk"
        log(section)
        d_url, d_body = f"{self.upstream}/chat/completions", chat_body(INPUT_C50, stream=True)
        s_url, s_body = f"{self.stack}/responses", responses_body(INPUT_C50, stream=True)
        ns_body = responses_body(INPUT_C50, stream=True, store=False)
        plan: list[tuple[str, str, bytes, Kind]] = [
            ("warm-up direct", d_url, d_body, "chat"),
            ("warm-up stack", s_url, ns_body, "responses"),
            ("direct 1", d_url, d_body, "chat"),
            ("stack store=false", s_url, ns_body, "responses"),
            ("direct 2", d_url, d_body, "chat"),
            # Last: with store=true the local DynamoDB emulation (moto) can leave the stack process slow and huge.
            ("stack", s_url, s_body, "responses"),
        ]
        phases = {p.label: p for p in run_async(self._aiohttp_phases(plan))}
        d1, d2 = phases["direct 1"], phases["direct 2"]
        d_ttfb = d1.ttfb() + d2.ttfb()
        d_total = _total(d1.ok + d2.ok)
        d_rate = (len(d1.ok) + len(d2.ok)) / (d1.wall_s + d2.wall_s)
        self.rows.append(Row("TTFB direct (ms)", len(d_ttfb), pct(d_ttfb, 0.5), pct(d_ttfb, 0.99), section=section))
        self.rows.append(Row("total direct (ms)", len(d_total), pct(d_total, 0.5), pct(d_total, 0.99), section=section))
        self.rows.append(Row("throughput direct (req/s)", len(d1.samples) + len(d2.samples), d_rate, section=section))
        for label, gated in (("stack", True), ("stack store=false", False)):
            st = phases[label]
            t, tot = st.ttfb(), _total(st.ok)
            added = Row(
                f"TTFB added, {label} (ms)",
                len(t),
                pct(t, 0.5) - pct(d_ttfb, 0.5),
                pct(t, 0.99) - pct(d_ttfb, 0.99),
                [le(50, "p99")] if gated else [],
                " ms",
                section,
            )
            ratio = 100 * st.rate / d_rate
            self.rows += [
                Row(f"TTFB {label} (ms)", len(t), pct(t, 0.5), pct(t, 0.99), section=section),
                added,
                Row(f"total {label} (ms)", len(tot), pct(tot, 0.5), pct(tot, 0.99), section=section),
                Row(f"throughput {label} (req/s)", len(st.samples), st.rate, section=section),
                Row(
                    f"throughput {label}/direct (%)",
                    None,
                    ratio,
                    goals=[ge(85)] if gated else [],
                    unit=" %",
                    section=section,
                ),
                Row(
                    f"errors {label} (count)",
                    len(st.samples),
                    st.errors,
                    goals=[le(0)] if gated else [],
                    section=section,
                ),
            ]
            for role in ("stack", "moto"):
                if st.cpu.get(role):
                    per = st.cpu[role] * 1000 / len(st.samples)
                    self.rows.append(
                        Row(f"{role} process CPU / request, {label} (ms)", len(st.samples), per, section=section)
                    )
            errors = sorted({str(s.error) for s in st.samples if s.error is not None})
            if errors:
                self.notes.append(f"c={c} {label} errors: {errors[:5]}")
        if "upstream" in d1.cpu:
            per = d1.cpu["upstream"] * 1000 / len(d1.samples)
            self.rows.append(Row("upstream process CPU / request (ms)", len(d1.samples), per, section=section))
        if d1.errors or d2.errors:
            self.notes.append(f"c={c}: the DIRECT side had {d1.errors + d2.errors} errors (bench or upstream problem)")
        for phase in (d1, d2):
            self.notes.append(
                f"c={c} {phase.label}: {phase.rate:.0f} req/s, TTFB p50/p99 {pct(phase.ttfb(), 0.5):.1f}/"
                f"{pct(phase.ttfb(), 0.99):.1f} ms (the two direct runs show drift)"
            )
        if "stack" in self.pids and (rss := peak_rss_mib(self.pids["stack"])) is not None:
            self.rows.append(
                Row("stack process peak RSS (MiB)", None, rss, goals=[le(120)], unit=" MiB", section=section)
            )
        self.raw["c50"] = {
            p.label: {"rate": p.rate, "wall_s": p.wall_s, "errors": p.errors, "cpu_s": p.cpu} for p in phases.values()
        }

    def client_choice(self) -> None:
        c, n = self.args.concurrency, self.args.concurrent_requests
        section = f"upstream HTTP client: c={c} streams to the scripted upstream (TTFT 20 + 2 ms/chunk)"
        log(section)
        url, body = f"{self.upstream}/chat/completions", chat_body(INPUT_C50, stream=True)
        budget = self.args.phase_seconds

        async def with_aiohttp() -> Phase:
            connector = aiohttp.TCPConnector(limit=100)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
                await run_phase("warm-up", 2 * c, c, lambda: aiohttp_stream(session, url, body, "chat"), budget)
                return await run_phase("aiohttp", n, c, lambda: aiohttp_stream(session, url, body, "chat"), budget)

        async def with_httpx() -> Phase:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(limits=limits, timeout=120) as client:
                await run_phase("warm-up", 2 * c, c, lambda: httpx_stream(client, url, body, "chat"), budget)
                return await run_phase("httpx", n, c, lambda: httpx_stream(client, url, body, "chat"), budget)

        results: list[Phase] = []
        for make in (with_aiohttp, with_httpx):
            gc.collect()
            results.append(run_async(make()))
            if len(results[-1].samples) < n:
                self.notes.append(f"{results[-1].label}: stopped after {budget:g} s (--phase-seconds)")
        rates = {p.label: p.rate for p in results}
        for phase in results:
            name = f"{phase.label} {version(phase.label)}"
            t = phase.ttfb()
            self.rows.append(Row(f"{name} TTFB (ms)", len(t), pct(t, 0.5), pct(t, 0.99), section=section))
            self.rows.append(Row(f"{name} throughput (req/s)", len(phase.samples), phase.rate, section=section))
            if phase.errors:
                self.notes.append(f"{name}: {phase.errors} errors")
        self.rows.append(
            Row("httpx/aiohttp throughput (%)", None, 100 * rates["httpx"] / rates["aiohttp"], section=section)
        )
        self.raw["client_choice"] = {p.label: {"rate": p.rate, "errors": p.errors} for p in results}


# --------------------------------------------------------------------------------------------------------------------
# Handler import probes

_PROBE_HEAD = "import importlib.util, json, resource, sys, time\nstart = time.perf_counter()\n"
_PROBE_FILE = """
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""
# Peak RSS: VmHWM of the new address space. ru_maxrss is not reset by exec on Linux, so a child of this (larger)
# process would report the parent's peak; VmHWM is the same high-water mark for the probe's own memory.
_PROBE_TAIL = """
elapsed = time.perf_counter() - start
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"mcp", "openai", "moto", "aiohttp", "starlette"})
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    rss = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"ms": elapsed * 1000, "rss_mib": rss, "heavy": heavy}))
"""
REFERENCES = {
    "bare interpreter": "",
    "boto3 + DynamoDB client": "import boto3\nboto3.client('dynamodb')\n",
}


def handler_modules() -> dict[str, Path]:
    """Each function of template.yaml and the file its Lambda imports first."""
    out: dict[str, Path] = {}
    for fn in load_template().functions.values():
        module = fn.asgi_target()[0] if fn.streams else fn.handler.rsplit(".", 1)[0]
        out[fn.code_dir.name] = fn.code_dir / f"{module.replace('.', '/')}.py"
    return dict(sorted(out.items()))


def streaming_function() -> str | None:
    """The function Lambda Web Adapter runs (the only one that may load aiohttp and starlette)."""
    return next((r.function.code_dir.name for r in load_template().routes if r.function.streams), None)


class ProbeFailed(Exception):
    """The probed module did not import (its last error line is the message)."""


def probe(code: str, argv: list[str], runs: int) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "engine"), "AWS_DEFAULT_REGION": "us-east-1"}
    out: list[dict[str, Any]] = []
    for index in range(runs + 1):  # the first run warms .pyc and the page cache; it is not counted
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_HEAD + code + _PROBE_TAIL, *argv],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = (time.perf_counter() - started) * 1000
        if done.returncode:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            raise ProbeFailed(lines[-1])
        if index:
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            result["process_ms"] = wall
            out.append(result)
    return out


def imports(runs: int) -> tuple[list[Row], list[str], dict[str, Any]]:
    section = f"handler import, fresh interpreter, median of {runs} (p99 col = worst run)"
    log(section)
    rows: list[Row] = []
    notes: list[str] = []
    raw: dict[str, Any] = {}
    streaming = streaming_function()
    targets: list[tuple[str, str, list[str], bool]] = [
        (name, _PROBE_FILE, [str(path)], True) for name, path in handler_modules().items()
    ]
    targets += [(f"ref: {name}", code, [], False) for name, code in REFERENCES.items()]
    for name, code, argv, gated in targets:
        try:
            results = probe(code, argv, runs)
        except ProbeFailed as exc:
            notes.append(f"{name}: the import FAILED: {exc}")
            results = []
        ms = [r["ms"] if code else r["process_ms"] for r in results]
        rss = [r["rss_mib"] for r in results]
        raw[name] = results
        rows.append(
            Row(
                f"{name} {'import' if code else 'startup, whole process'} (ms)",
                len(ms),
                pct(ms, 0.5),
                max(ms, default=float("nan")),
                [le(350)] if gated else [],
                " ms",
                section,
            )
        )
        rows.append(
            Row(
                f"{name} RSS (MiB)",
                len(rss),
                pct(rss, 0.5),
                max(rss, default=float("nan")),
                [le(70)] if gated else [],
                " MiB",
                section,
            )
        )
        # mcp / openai / moto never belong in a handler; aiohttp and starlette only in the streaming function.
        allowed = {"aiohttp", "starlette"} if name == streaming else set()
        unexpected = sorted(set(results[-1]["heavy"] if results else ()) - allowed)
        if gated and unexpected:
            notes.append(f"{name} imports {', '.join(unexpected)} at module load")
    return rows, notes, raw


# --------------------------------------------------------------------------------------------------------------------
# Cold start of the built artifact (make lambda-check's Lambda-like environment)

# Goals here, on this machine (arm64 Lambda is slower, see the README).
COLD_START_GOALS = {"stream": 400.0, "authorizer": 150.0}
COLD_START_DEFAULT_GOAL = 300.0


def cold_starts(runs: int, *, without_pyc: bool = True) -> tuple[list[Row], list[str], dict[str, Any]]:
    """Every function of ``sam build``'s output started as Lambda starts it (``local.lambda_check``), ``runs`` times:
    init (spawn to ready: the handler imported by the runtime stand-in, or ``run.sh`` answering the readiness path)
    and the first request, with the layer's ``.pyc`` as deployed; the same layer without ``.pyc`` alongside, run
    for run, as the before/after ratio (``without_pyc=False`` skips those)."""
    from local.artifact import build
    from local.lambda_check import host_arch, layer_without_pyc, measure, namespace_ready, runtime_floor

    section = f"cold start of the built artifact ({host_arch()}), Lambda-like env, median of {runs} (p99 col = worst)"
    log(section)
    why = namespace_ready()
    if why:
        return [], [f"cold start rows skipped: {why}"], {}
    result = build(host_arch())
    with_pyc: dict[str, list[Any]] = {}
    without: dict[str, list[Any]] = {}
    with layer_without_pyc(result.layer_dir) as bare:
        for _ in range(runs):  # interleaved, so machine drift hits both alike
            for name, found in measure(result, 1).items():
                with_pyc.setdefault(name, []).extend(found)
            for name, found in measure(result, 1, layer=bare).items() if without_pyc else ():
                without.setdefault(name, []).extend(found)
    floor = [r.init_ms for r in runtime_floor(result, max(runs, 3))]
    rows: list[Row] = [
        Row(
            "ref: an empty handler (namespace, interpreter, runtime stand-in) init (ms)",
            len(floor),
            pct(floor, 0.5),
            max(floor, default=float("nan")),
            [],
            " ms",
            section,
        )
    ]
    notes: list[str] = []
    raw: dict[str, Any] = {"empty_handler_init_ms": floor}
    for name in sorted(with_pyc, key=lambda n: (n != "stream", n != "authorizer", n)):
        good = [r for r in with_pyc[name] if not r.problems]
        bare_runs = [r for r in without.get(name, []) if not r.problems]
        if len(good) < len(with_pyc[name]):
            notes.append(
                f"{name}: {len(with_pyc[name]) - len(good)} cold start(s) FAILED: {with_pyc[name][0].problems}"
            )
        init = [r.init_ms for r in good]
        first = [r.first_request_ms for r in good]
        bare_init = [r.init_ms for r in bare_runs]
        cpu = [r.init_cpu_ms for r in good]
        bare_cpu = [r.init_cpu_ms for r in bare_runs]
        goal = COLD_START_GOALS.get(name, COLD_START_DEFAULT_GOAL)
        rows.append(
            Row(
                f"{name} init, .pyc as deployed (ms)",
                len(init),
                pct(init, 0.5),
                max(init, default=float("nan")),
                [le(goal)],
                " ms",
                section,
            )
        )
        rows.append(
            Row(
                f"{name} init without .pyc / with (x)",
                len(bare_init),
                pct(bare_init, 0.5) / pct(init, 0.5) if init else float("nan"),
                None,
                [],
                "",
                section,
            )
        )
        for label, values in ((".pyc as deployed", cpu), ("no .pyc", bare_cpu)):
            worst = max(values, default=float("nan"))
            rows.append(Row(f"{name} init CPU, {label} (ms)", len(values), pct(values, 0.5), worst, [], " ms", section))
        rows.append(
            Row(
                f"{name} first request (ms)",
                len(first),
                pct(first, 0.5),
                max(first, default=float("nan")),
                [],
                " ms",
                section,
            )
        )
        raw[name] = {
            "init_ms": init,
            "first_request_ms": first,
            "init_ms_without_pyc": bare_init,
            "init_cpu_ms": cpu,
            "init_cpu_ms_without_pyc": bare_cpu,
        }
    return rows, notes, raw


# --------------------------------------------------------------------------------------------------------------------
# Main


def run_async[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed (a lighter client leaves more of the 2 cores to the servers)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return asyncio.run(coro, loop_factory=uvloop.new_event_loop)


@contextmanager
def child_output(path: Path) -> Iterator[None]:
    """Processes started inside inherit stdout/stderr pointing at ``path``; ours are restored on the way out."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def server_log_notes(path: Path) -> list[str]:
    """Count the errors the servers logged (structured ERROR lines and Python tracebacks)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    errors = text.count('"level":"ERROR"')
    tracebacks = text.count("Traceback (most recent call last)")
    if not errors and not tracebacks:
        return []
    return [f"the servers logged {errors} ERROR lines and {tracebacks} tracebacks (see {path})"]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": version("aiohttp"),
        "httpx": version("httpx"),
        "uvicorn": version("uvicorn"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.bench", description="Local stack vs the bare upstream.")
    parser.add_argument("--n", type=int, default=200, help="requests per side in the c=1 sections (default 200)")
    parser.add_argument("--warmup", type=int, default=30, help="c=1 warm-up requests per side and kind (default 30)")
    parser.add_argument("--concurrency", type=int, default=50, help="workers in the concurrent sections (default 50)")
    parser.add_argument(
        "--concurrent-requests",
        type=int,
        default=500,
        help="requests per phase in the concurrent sections (default 500)",
    )
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=30.0,
        help="no new request starts after this long in one concurrent phase (default 30)",
    )
    parser.add_argument("--import-runs", type=int, default=5, help="measured interpreters per handler (default 5)")
    parser.add_argument(
        "--cold-start-runs",
        type=int,
        default=3,
        help="cold starts of each built function, with and without .pyc (default 3; 0 skips the build)",
    )
    parser.add_argument(
        "--without-pyc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also start every function from the layer without .pyc, for the ratio (default: yes)",
    )
    parser.add_argument(
        "--server-log",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-servers.log",
        help="where the upstream's and the stack's own output goes (default: $TMPDIR/bench-servers.log)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--only",
        choices=("cold-starts",),
        default=None,
        help="run one section alone (cold-starts: the built artifact's cold starts, about a minute per run)",
    )
    return parser.parse_args(argv)


def _finite(value: Any) -> Any:
    """NaN / infinity become null, so the JSON is standard."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    facts = machine()
    rows: list[Row] = []
    notes: list[str] = []
    raw: dict[str, Any] = {}
    if args.only == "cold-starts":
        cold_rows, cold_notes, raw["cold_starts"] = cold_starts(
            max(args.cold_start_runs, 1), without_pyc=args.without_pyc
        )
        return report(args, facts, rows + cold_rows, notes + cold_notes, raw, time.perf_counter() - started)
    log(f"starting the scripted upstream and the local stack (their output goes to {args.server_log})")
    args.server_log.write_text("")
    with ExitStack() as servers:
        try:
            with child_output(args.server_log):
                upstream = servers.enter_context(serve_process(UpstreamConfig(chunks=CHUNKS, model=MODEL)))
                stack = servers.enter_context(running_stack(upstream_base_url=upstream))
        except RuntimeError as exc:
            print(f"bench: could not start the servers: {exc} (their output: {args.server_log})", file=sys.stderr)
            return 1
        bench = Bench(upstream, stack, args, pids=_children())
        log(f"warm-up ({args.warmup} requests per side and kind)")
        bench.warm_up()
        bench.streams_c1()
        bench.create_c1()
        bench.mcp_c1()
        bench.websocket_agent()
        bench.file_search()
        bench.background()
        bench.authorizer()
        from .bench_storage import storage_rows

        bench.rows += storage_rows(stack)
        bench.client_choice()
        bench.streams_c50()
        rows += bench.rows
        notes += bench.notes
        raw.update(bench.raw)
    import_rows, import_notes, raw["imports"] = imports(args.import_runs)
    rows += import_rows
    notes += import_notes
    if args.cold_start_runs:
        cold_rows, cold_notes, raw["cold_starts"] = cold_starts(args.cold_start_runs, without_pyc=args.without_pyc)
        rows += cold_rows
        notes += cold_notes
    notes += server_log_notes(args.server_log)
    return report(args, facts, rows, notes, raw, time.perf_counter() - started)


def report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    rows: list[Row],
    notes: list[str],
    raw: dict[str, Any],
    duration: float,
) -> int:
    """Print the table, the notes and the summary; write the JSON when asked."""
    checks = [g.met(r) for r in rows for g in r.goals]
    met = sum(checks)
    print()
    print(
        f"machine: nproc={facts['nproc']} cpu={facts['cpu']!r} python={facts['python']} "
        f"aiohttp={facts['aiohttp']} httpx={facts['httpx']} uvicorn={facts['uvicorn']}"
    )
    print()
    print(render(rows))
    if notes:
        print()
        for note in notes:
            print(f"note: {note}")
    print()
    print(f"bench duration: {duration:.1f} s")
    print(f"SUMMARY: {met}/{len(checks)} goals met" + ("" if met == len(checks) else " (see ✗ rows)"))
    if args.json is not None:
        doc = {
            "machine": facts,
            "duration_s": duration,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "goals_met": met,
            "goals": len(checks),
            "rows": [asdict(r) | {"goal": r.goal_text(), "meets": r.verdict()} for r in rows],
            "notes": notes,
            "raw": raw,
        }
        args.json.write_text(json.dumps(_finite(doc), indent=2, default=str, allow_nan=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
