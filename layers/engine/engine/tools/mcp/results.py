"""What comes back from a server, in OpenAI's shapes: a call's output (text, truncated) or error
(``mcp_tool_execution_error``, ``mcp_protocol_error``, ``http_error``), and one clear reason for a connection
that could not be made or was lost (``Failure``: the ``mcp_list_tools.error`` text and the error for calls)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.tools.mcp.transport import BLOCKED

if TYPE_CHECKING:
    from mcp_types import CallToolResult

__all__ = [
    "HTTP_STAND_INS",
    "INTERNAL_ERROR",
    "REQUEST_TIMEOUT",
    "Failure",
    "McpCallResult",
    "call_result",
    "connect_failure",
    "connect_reason",
    "http_failure",
    "leaves",
    "lost",
    "seconds",
    "status_of",
]


@dataclass(frozen=True, slots=True)
class McpCallResult:
    """A tool call's outcome: ``output`` text on success, else ``error`` in one of OpenAI's shapes."""

    output: str | None
    error: dict[str, Any] | None = None


# MCPError messages the streamable-HTTP transport makes up for a non-2xx answer without a JSON-RPC body.
HTTP_STAND_INS = frozenset({"Server returned an error response", "Not Found", "Session terminated"})
REQUEST_TIMEOUT = -32001
INTERNAL_ERROR = -32603


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def seconds(value: float) -> str:
    """A duration as messages show it."""
    return f"{value:g} s"


def _truncate(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return f"{kept}\n…[truncated: {len(kept.encode())} of {len(data)} bytes shown]"


def _block_text(block: Any) -> tuple[bool, str]:
    """(is_text, text) for one content block; non-text blocks as compact JSON without base64 payloads."""
    if getattr(block, "type", None) == "text":
        return True, str(block.text)
    dumped = block.model_dump(by_alias=True, exclude_none=True, mode="json")
    for holder in (dumped, dumped.get("resource") if isinstance(dumped.get("resource"), dict) else None):
        if holder is None:
            continue
        for key in ("data", "blob"):
            if isinstance(holder.get(key), str):
                holder[key] = f"<{len(holder[key])} base64 characters omitted>"
    return False, json.dumps(dumped, ensure_ascii=False, separators=(",", ":"))


def call_result(result: CallToolResult, max_output_bytes: int) -> McpCallResult:
    """A ``tools/call`` result as output text, or as ``mcp_tool_execution_error`` when the tool reported one."""
    blocks = [_block_text(block) for block in result.content]
    has_text = any(is_text for is_text, _ in blocks)
    parts = [text for _, text in blocks]
    if not has_text and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))]
    if result.is_error:
        text = _truncate("\n".join(parts), max_output_bytes) if parts else "The tool reported an error."
        error = {"type": "mcp_tool_execution_error", "content": [{"type": "input_text", "text": text}]}
        return McpCallResult(None, error)
    return McpCallResult(_truncate("\n".join(parts), max_output_bytes))


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a connection is unusable: the list_tools message and the error shape for calls."""

    message: str
    error: dict[str, Any]

    def result(self) -> McpCallResult:
        return McpCallResult(None, self.error)


def http_failure(label: str, status: int) -> Failure:
    """The server answered an HTTP error status."""
    hint = " (check headers/authorization)" if status in (401, 403) else ""
    message = f"MCP server '{label}' answered HTTP {status}{hint}"
    return Failure(message, {"type": "http_error", "code": status, "message": message})


def connect_reason(exc: BaseException) -> str:
    """A short reason for a failed connection, from the most specific exception in its cause chain."""
    import socket
    import ssl

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in reversed(chain):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, socket.gaierror):
            return "host not found"
        if isinstance(link, ssl.SSLError):
            return f"TLS error ({link})"
        if isinstance(link, ConnectionResetError):
            return "connection reset"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "resolve" in lowered or "name or service not known" in lowered:
        return "host not found"
    if "certificate" in lowered or "ssl" in lowered:
        return f"TLS error ({text})"
    return text


def lost(label: str, error: BaseException | None = None) -> Failure:
    """Why a session that was connected (or never got the chance) can no longer be used."""
    message = f"The connection to MCP server '{label}' was closed"
    if error is not None:
        from mcp import MCPError

        leaf = next(iter(leaves(error)), error)
        detail = leaf.message if isinstance(leaf, MCPError) else connect_reason(leaf)
        message = f"The connection to MCP server '{label}' was lost: {detail}"
    return Failure(message, {"type": "http_error", "code": 0, "message": message})


def connect_failure(
    label: str, error: BaseException | None, statuses: list[int], *, timed_out: bool, connect_timeout: float
) -> Failure:
    """One clear failure for a connection that could not be made."""
    import httpx2
    from mcp import MCPError

    found = leaves(error) if error is not None else []

    def transport_failure(message: str) -> Failure:
        return Failure(message, {"type": "http_error", "code": 0, "message": message})

    if any(BLOCKED in str(leaf) for leaf in found):
        return transport_failure(f"MCP server '{label}' resolves to a non-public address")
    bad = [s for s in statuses if s >= 400] + [s for s in map(status_of, found) if s >= 400]
    for status in (401, 403):
        if status in bad:
            return http_failure(label, status)
    if bad and not any(200 <= s < 300 for s in statuses):
        return http_failure(label, bad[0])
    for leaf in found:
        if isinstance(leaf, httpx2.ConnectError | ConnectionError):
            return transport_failure(f"Could not connect to MCP server '{label}': {connect_reason(leaf)}")
    if timed_out or any(isinstance(leaf, TimeoutError | httpx2.TimeoutException) for leaf in found):
        return transport_failure(f"MCP server '{label}' timed out after {seconds(connect_timeout)}")
    for leaf in found:
        if isinstance(leaf, MCPError):
            message = f"MCP server '{label}' failed the MCP handshake: {leaf.message} (code {leaf.code})"
            return Failure(message, {"type": "mcp_protocol_error", "code": leaf.code, "message": message})
    for leaf in found:
        if isinstance(leaf, httpx2.TransportError):
            return transport_failure(f"Could not connect to MCP server '{label}': {connect_reason(leaf)}")
    detail = next((f"{type(leaf).__name__}: {leaf}" for leaf in found), "no answer")
    return transport_failure(f"MCP server '{label}' could not be used: {detail}")


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception carries (0 if none)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", 0)
    return status if isinstance(status, int) else 0
