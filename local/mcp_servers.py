"""Real MCP servers on 127.0.0.1 for the tests (unit and e2e), each a context manager that yields its URL.

- :func:`mcp_server` — an ``MCPServer`` (the mcp SDK's high-level server) over streamable HTTP or legacy SSE,
  with the tools ``add``, ``echo``, ``fail``, ``slow`` and ``big``;
- :func:`paging_server` — a low-level ``Server`` listing 25 tools in pages of 10;
- :func:`hanging_server` — a TCP listener that accepts connections and never answers;
- :func:`unauthorized_server` — an HTTP server that answers every request ``401``;
- :func:`everything_server` — npm ``@modelcontextprotocol/server-everything`` (``make test`` installs it into
  ``.cache/npm``; the tests skip when node or the package is missing).

The Python servers run in child processes (``python -m local.mcp_servers serve …``): constructing an MCP server
in the test process would turn on INFO logging there. Their output goes to a temporary file that is shown if a
server fails to start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Literal

from local.processes import stop

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING_PACKAGE = ".cache/npm/node_modules/@modelcontextprotocol/server-everything"
EVERYTHING_JS = ROOT / EVERYTHING_PACKAGE / "dist" / "index.js"

# server-everything calls app.listen(PORT), which binds every interface; this preload (node -r) pins any
# listen(port) / listen({port}) without an explicit host to 127.0.0.1.
FORCE_LOOPBACK_JS = """\
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\\d+$/.test(first))) {
    const rest = args.slice(1).filter((arg) => typeof arg === "function");
    return listen.call(this, { port: Number(first), host: "127.0.0.1" }, ...rest);
  }
  if (first && typeof first === "object" && !("path" in first) && !("fd" in first) && !("handle" in first)) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-4000:]


@contextmanager
def _child(args: list[str], port: int, what: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``args`` until the context exits; enter once something accepts connections on ``port``."""
    child_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'layers' / 'engine'}", **(env or {})}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=child_env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{what} did not listen on port {port} within 60 s:\n{_tail(log)}") from None
                    time.sleep(0.02)
            yield
        finally:
            stop(proc, timeout=5)


@contextmanager
def mcp_server(transport: Literal["streamable-http", "sse"], *, path: str | None = None) -> Iterator[str]:
    """An ``MCPServer`` with add/echo/fail/slow/big; yields ``http://127.0.0.1:P/mcp`` (or ``/sse``, or ``path``)."""
    port = free_port()
    path = path or ("/sse" if transport == "sse" else "/mcp")
    with _child(
        [sys.executable, "-m", "local.mcp_servers", "serve", transport, str(port), path], port, f"{transport} server"
    ):
        yield f"http://127.0.0.1:{port}{path}"


@contextmanager
def paging_server() -> Iterator[str]:
    """A low-level ``Server`` over streamable HTTP: ``tool_0``…``tool_24`` in pages of 10; calls echo back."""
    port = free_port()
    with _child([sys.executable, "-m", "local.mcp_servers", "paging", str(port)], port, "paging server"):
        yield f"http://127.0.0.1:{port}/mcp"


@contextmanager
def hanging_server() -> Iterator[str]:
    """A listener on 127.0.0.1 that accepts TCP connections and never sends a byte; yields ``http://…/mcp``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, name="hanging-mcp-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


class _Unauthorized(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _deny(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"error":"unauthorized"}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="mcp"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _deny

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def unauthorized_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every request ``401``; yields ``http://…/mcp``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def everything_server(transport: Literal["streamableHttp", "sse"]) -> Iterator[str]:
    """npm ``@modelcontextprotocol/server-everything`` on 127.0.0.1; yields ``http://127.0.0.1:P/mcp`` or ``/sse``.

    Skips the calling test when node or the package (``make .cache/npm/.installed``) is missing.
    """
    import pytest

    node = shutil.which("node")
    if node is None:
        pytest.skip("npm not available: no node on PATH to run @modelcontextprotocol/server-everything")
    if not EVERYTHING_JS.is_file():
        pytest.skip(
            f"npm not available: {EVERYTHING_PACKAGE} is not installed "
            "(make .cache/npm/.installed installs @modelcontextprotocol/server-everything)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mcp-everything-") as tmp:
        preload = Path(tmp) / "force-loopback.cjs"
        preload.write_text(FORCE_LOOPBACK_JS)
        args = [node, "-r", str(preload), str(EVERYTHING_JS), transport]
        with _child(args, port, f"server-everything ({transport})", env={"PORT": str(port)}):
            yield f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"


# ---------------------------------------------------------------------------------------------------------------
# The child processes
# ---------------------------------------------------------------------------------------------------------------


def _serve_tools(transport: str, port: int, path: str) -> None:
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("test-tools", version="1.0")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def fail(msg: str) -> str:
        """Fail with the given message (a ToolError, whose text reaches the caller)."""
        raise ToolError(msg)

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        await anyio.sleep(seconds)
        return f"slept {seconds:g} s"

    @server.tool()
    def big(n: int) -> str:
        """Return n bytes of text."""
        return ("0123456789abcdef" * (n // 16 + 1))[:n]

    if transport == "sse":
        server.run("sse", host="127.0.0.1", port=port, sse_path=path)
    else:
        server.run("streamable-http", host="127.0.0.1", port=port, streamable_http_path=path)


def _serve_paging(port: int) -> None:
    from typing import Any

    import mcp_types as types
    import uvicorn
    from mcp.server import Server

    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    tools = [types.Tool(name=f"tool_{i}", description=f"Tool number {i}.", input_schema=schema) for i in range(25)]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + 10
        return types.ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = json.dumps({"tool": params.name, "arguments": params.arguments})
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server = Server("pager", version="1.0", on_list_tools=list_tools, on_call_tool=call_tool)
    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "serve":
        _serve_tools(rest[0], int(rest[1]), rest[2])
    elif command == "paging":
        _serve_paging(int(rest[0]))
    else:
        raise SystemExit(f"usage: python -m local.mcp_servers serve TRANSPORT PORT PATH | paging PORT (got {command})")
