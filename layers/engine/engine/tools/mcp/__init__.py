"""The MCP client behind ``mcp`` / ``sse`` tools: list a server's tools and call them for one response.

``open_connection(spec)`` gives an :class:`McpConnection` (one MCP session per server per response). Its
``list_tools`` raises :class:`McpError` with the text that goes into ``mcp_list_tools.error``; its ``call_tool``
never raises for server, protocol, transport or timeout failures: they become ``McpCallResult.error`` in OpenAI's
shapes (``mcp_tool_execution_error``, ``mcp_protocol_error``, ``http_error``).

Request-time checks live here too: :func:`validate_headers` (the caller's ``headers`` / ``authorization``) and
:func:`check_destination` (scheme, credentials and an SSRF check of every address the host resolves to). The
same address policy guards every TCP connection the client opens, against the address it actually connects to,
so a DNS answer that changes between the check and the connection gains nothing.

The ``mcp`` SDK (≈1.2 s and 64 MiB to import), ``httpx2`` and ``anyio`` are imported inside functions only:
importing this module is cheap and requests without MCP tools never load them.

Transports: ``"sse"`` (Fireworks' ``{"type": "sse"}``) is the legacy HTTP+SSE transport only. ``"auto"`` tries
legacy SSE first when the URL path ends in ``/sse``, streamable HTTP otherwise, and falls back to the other one
only when the first attempt was answered HTTP 400/404/405 (never after 401/403, a refused connection or a
timeout). The transport that worked (and whether the server needed the pre-2026 handshake) is remembered per URL
for the life of the process.

The client is split by job: ``guard`` (request-time checks and the address policy), ``transport`` (the guarded
HTTP client, the SDK transports, which one to try first), ``connection`` (the session actor) and ``results``
(outputs and errors in OpenAI's shapes); ``base`` holds what they share.
"""

from __future__ import annotations

from engine.tools.mcp.base import McpError, McpServerSpec, McpTool
from engine.tools.mcp.connection import McpConnection, open_connection
from engine.tools.mcp.guard import check_destination, validate_headers
from engine.tools.mcp.results import McpCallResult

__all__ = [
    "McpCallResult",
    "McpConnection",
    "McpError",
    "McpServerSpec",
    "McpTool",
    "check_destination",
    "open_connection",
    "validate_headers",
]
