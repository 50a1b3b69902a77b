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
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import InvalidRequestError

if TYPE_CHECKING:
    import ssl
    from contextlib import AsyncExitStack

    import httpx2
    from anyio import CancelScope
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from mcp import Client
    from mcp_types import CallToolResult

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

Transport = Literal["streamable_http", "sse"]


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """Where and how to reach one MCP server; ``headers`` are already validated (see :func:`validate_headers`)."""

    server_label: str
    server_url: str
    transport: Literal["auto", "sse"] = "auto"  # "sse" = Fireworks' {"type": "sse"}: legacy HTTP+SSE only
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpTool:
    """One tool as the server listed it."""

    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    annotations: dict[str, Any] | None = None

    def to_item(self) -> dict[str, Any]:
        """The tool as it appears in an ``mcp_list_tools`` item's ``tools``."""
        item: dict[str, Any] = {"name": self.name, "input_schema": self.input_schema}
        if self.description is not None:
            item["description"] = self.description
        if self.annotations is not None:
            item["annotations"] = self.annotations
        return item


@dataclass(frozen=True, slots=True)
class McpCallResult:
    """A tool call's outcome: ``output`` text on success, else ``error`` in one of OpenAI's shapes."""

    output: str | None
    error: dict[str, Any] | None = None


class McpError(Exception):
    """A server whose tools cannot be listed; ``message`` is what goes into ``mcp_list_tools.error``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------------------------------
# Request-time validation
# ---------------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")
_MAX_HEADER_BYTES = 8 * 1024
# Hop-by-hop headers, and the ones the MCP transports set themselves: a caller may not override either.
_DENIED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
    "upgrade", "expect", "proxy-authorization", "accept", "accept-encoding", "content-type", "content-encoding",
    "cookie", "last-event-id", "mcp-session-id", "mcp-protocol-version",
})  # fmt: skip


def validate_headers(
    headers: dict[str, str] | None, authorization: str | None, *, param: str = "headers"
) -> dict[str, str]:
    """Check the caller's headers for an MCP server and fold ``authorization`` in as ``Authorization: Bearer …``.

    Raises :class:`InvalidRequestError` (``param``; ``…authorization`` for that field) for a name that is not an
    HTTP token, a value with control or non-ASCII characters, a hop-by-hop or MCP protocol header, a name given
    twice, or more than 8 KB in all. Values are never echoed in messages.
    """
    out: dict[str, str] = {}
    seen: set[str] = set()
    size = 0
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidRequestError(f"Invalid header name {str(name)[:64]!r}: must be an HTTP token.", param=param)
        lower = name.lower()
        if lower in _DENIED_HEADERS or lower.startswith("mcp-"):
            raise InvalidRequestError(f"Header '{name}' cannot be set for an MCP server.", param=param)
        if lower in seen:
            raise InvalidRequestError(f"Header '{name}' is given more than once.", param=param)
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            raise InvalidRequestError(
                f"Invalid value for header '{name}': must be printable ASCII without line breaks.", param=param
            )
        seen.add(lower)
        size += len(name) + len(value) + 4
        out[name] = value.strip()
    if authorization is not None and authorization.strip():
        auth_param = param.removesuffix("headers") + "authorization" if param.endswith("headers") else param
        if "authorization" in seen:
            raise InvalidRequestError(
                "Give the token either in 'authorization' or as an 'Authorization' header, not both.",
                param=auth_param,
            )
        token = authorization.strip()
        if not _VALUE.fullmatch(token):
            raise InvalidRequestError(
                "Invalid authorization: must be printable ASCII without line breaks.", param=auth_param
            )
        value = token if token[:7].lower() == "bearer " else f"Bearer {token}"
        out["Authorization"] = value
        size += len("Authorization") + len(value) + 4
    if size > _MAX_HEADER_BYTES:
        raise InvalidRequestError(f"Headers for an MCP server may not exceed {_MAX_HEADER_BYTES} bytes.", param=param)
    return out


# Cloud metadata endpoints stay unreachable even when private networks are allowed.
_METADATA_ADDRESSES = frozenset({"169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23"})


def _address_allowed(ip: str, allow_private: bool) -> bool:
    """Whether the client may connect to ``ip``: a global unicast address, or anything but multicast and cloud
    metadata when ``allow_private``. IPv6 forms that embed an IPv4 address are judged by that address."""
    import ipaddress

    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is None and addr in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 well-known prefix
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            addr = embedded
    if str(addr) in _METADATA_ADDRESSES or addr.is_multicast:
        return False
    if allow_private:
        return True
    return addr.is_global and not (addr.is_private or addr.is_reserved or addr.is_loopback or addr.is_link_local)


def _origin(url: str) -> str:
    """``scheme://host:port/path`` of a URL, without userinfo or query (which may carry secrets), for logs."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def _resolve(host: str, port: int) -> list[str]:
    import socket

    import anyio

    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_destination(url: str, *, allow_private: bool, param: str, dns_timeout: float = 5.0) -> None:
    """Refuse (400, ``param``) an MCP server URL this server must not connect to.

    The URL must be ``http``/``https`` with a host and no userinfo; the host must resolve, and every address it
    resolves to must be public (see :func:`_address_allowed`) unless ``allow_private``. The client learns only
    that the URL is unreachable or non-public; the details go to the logs.
    """
    from urllib.parse import urlsplit

    import anyio

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequestError("Invalid MCP server URL.", param=param) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError("MCP server URL must use http or https.", param=param)
    if "@" in parts.netloc:
        raise InvalidRequestError(
            "MCP server URL must not contain credentials: use 'authorization' or 'headers'.", param=param
        )
    host = parts.hostname
    if not host:
        raise InvalidRequestError("MCP server URL must include a host.", param=param)
    port = port or (443 if parts.scheme == "https" else 80)
    shown = _origin(url)
    try:
        with anyio.fail_after(dns_timeout):
            addresses = await _resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        _log_warning("MCP server host does not resolve", url=shown, error=f"{type(exc).__name__}: {exc}")
        raise InvalidRequestError(f"MCP server URL '{shown}' is not reachable from this server.", param=param) from None
    refused = [a for a in addresses if not _address_allowed(a, allow_private)]
    if not addresses or refused:
        _log_warning("MCP server URL refused: non-public address", url=shown, addresses=refused or addresses)
        raise InvalidRequestError(f"MCP server URL '{shown}' resolves to a non-public address.", param=param)


def _log_warning(message: str, **fields: Any) -> None:
    from engine.observability import logger

    logger.warning(message, extra=fields)


def _log_debug(message: str, **fields: Any) -> None:
    from engine.observability import logger

    logger.debug(message, extra=fields)


# ---------------------------------------------------------------------------------------------------------------
# HTTP plumbing (built on first use): one SSLContext, the SSRF-guarded backend, the response-size cap
# ---------------------------------------------------------------------------------------------------------------

_BLOCKED = "refused by the MCP destination policy"
_TOO_LARGE = "MCP response larger than"
_ssl_context: ssl.SSLContext | None = None
_client_factory: Callable[..., httpx2.AsyncClient] | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSLContext per process: building one loads the CA bundle (≈50 ms)."""
    global _ssl_context
    if _ssl_context is None:
        import httpx2

        _ssl_context = httpx2.create_ssl_context()
    return _ssl_context


def _http_client_factory() -> Callable[..., httpx2.AsyncClient]:
    """``make(allow_private, max_response_bytes, hook, headers=, timeout=, auth=) -> httpx2.AsyncClient``."""
    global _client_factory
    if _client_factory is not None:
        return _client_factory

    import socket
    from collections.abc import AsyncIterator, Iterable

    import anyio
    import httpcore2
    import httpx2
    from httpcore2._backends.auto import AutoBackend  # private; httpx2 has no public network_backend argument

    class GuardedBackend(AutoBackend):
        """Resolves once, checks every address, then connects to a checked address (no rebinding window)."""

        def __init__(self, allow_private: bool) -> None:
            super().__init__()
            self.allow_private = allow_private

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.AsyncNetworkStream:
            try:
                with anyio.fail_after(timeout if timeout is not None else math.inf):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise httpcore2.ConnectError(f"could not resolve host: {exc}") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            if not addresses or not all(_address_allowed(a, self.allow_private) for a in addresses):
                raise httpcore2.ConnectError(_BLOCKED)
            error: Exception | None = None
            for address in addresses:
                try:
                    return await super().connect_tcp(
                        address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                    )
                except httpcore2.ConnectError as exc:  # try the next address; report the last failure
                    error = exc
            assert error is not None
            raise error

    class ResponseTooLarge(httpx2.StreamError, httpx2.SSEError):
        """A StreamError keeps the session alive on the JSON path, an SSEError on the SSE-framed path."""

        def __init__(self, message: str) -> None:
            httpx2.StreamError.__init__(self, message)

    class CappedStream(httpx2.AsyncByteStream):
        def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
            self.inner, self.limit = inner, limit

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self.inner:
                seen += len(chunk)
                if seen > self.limit:
                    raise ResponseTooLarge(f"{_TOO_LARGE} {self.limit} bytes")
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    class CappedTransport(httpx2.AsyncBaseTransport):
        """Caps each response body; long-lived GET event streams are left to the SDK's per-event limit."""

        def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
            self.inner, self.limit = inner, limit

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            response = await self.inner.handle_async_request(request)
            if request.method == "GET" and response.headers.get("content-type", "").startswith("text/event-stream"):
                return response
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > self.limit:
                await response.aclose()
                error = {"code": -32000, "message": f"{_TOO_LARGE} {self.limit} bytes"}
                return httpx2.Response(502, json={"jsonrpc": "2.0", "id": None, "error": error}, request=request)
            assert isinstance(response.stream, httpx2.AsyncByteStream)
            response.stream = CappedStream(response.stream, self.limit)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    def make(
        allow_private: bool,
        max_response_bytes: int,
        hook: Callable[[httpx2.Response], Any],
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        inner = httpx2.AsyncHTTPTransport(verify=_shared_ssl_context(), trust_env=False)
        inner._pool._network_backend = GuardedBackend(allow_private)
        return httpx2.AsyncClient(
            transport=CappedTransport(inner, max_response_bytes),
            headers=headers,
            timeout=timeout if timeout is not None else httpx2.Timeout(10.0, read=60.0),
            auth=auth,
            trust_env=False,
            event_hooks={"response": [hook]},
        )

    _client_factory = make
    return make


# ---------------------------------------------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------------------------------------------

# The HTTP statuses of the requests made on behalf of one list/call (the SDK reports them only as MCPError).
_request_statuses: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("mcp_statuses", default=None)
# MCPError messages the streamable-HTTP transport makes up for a non-2xx answer without a JSON-RPC body.
_HTTP_STAND_INS = frozenset({"Server returned an error response", "Not Found", "Session terminated"})
_REQUEST_TIMEOUT = -32001
_INTERNAL_ERROR = -32603


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _seconds(value: float) -> str:
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


def _call_result(result: CallToolResult, max_output_bytes: int) -> McpCallResult:
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
class _Failure:
    """Why a connection is unusable: the list_tools message and the error shape for calls."""

    message: str
    error: dict[str, Any]

    def result(self) -> McpCallResult:
        return McpCallResult(None, self.error)


def _http_failure(label: str, status: int) -> _Failure:
    hint = " (check headers/authorization)" if status in (401, 403) else ""
    message = f"MCP server '{label}' answered HTTP {status}{hint}"
    return _Failure(message, {"type": "http_error", "code": status, "message": message})


def _connect_reason(exc: BaseException) -> str:
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


# Transport that worked per URL, and whether that server needed the pre-2026 initialize handshake.
_preferred: dict[str, tuple[Transport, bool]] = {}
_PREFERRED_MAX = 1024
_CLOSE_GRACE = 2.0
_MAX_PAGES = 100


def open_connection(
    spec: McpServerSpec,
    *,
    allow_private: bool = False,
    connect_timeout: float = 10.0,
    call_timeout: float = 60.0,
    list_timeout: float = 30.0,
    max_output_bytes: int = 100_000,
    max_tools: int = 256,
    max_response_bytes: int = 4_000_000,
) -> McpConnection:
    """A not-yet-open connection to ``spec``'s server; use it as ``async with open_connection(spec) as c:``."""
    return McpConnection(
        spec,
        allow_private=allow_private,
        connect_timeout=connect_timeout,
        call_timeout=call_timeout,
        list_timeout=list_timeout,
        max_output_bytes=max_output_bytes,
        max_tools=max_tools,
        max_response_bytes=max_response_bytes,
    )


@dataclass(slots=True, eq=False)
class _Request:
    kind: Literal["list", "call"]
    future: asyncio.Future[Any]
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


class McpConnection:
    """One MCP session for the duration of one response. Safe to use from an async generator: the mcp
    Client lives in a background task that this object talks to through a queue (the Client's anyio task
    group and cancel scopes must be entered and exited in one task, never across a ``yield``).

    ``__aenter__`` starts connecting in the background and returns at once; a connection failure surfaces from
    ``list_tools`` (as :class:`McpError`) or ``call_tool`` (as an error result). ``__aexit__`` stops the background
    task within about two seconds even if the server hangs. ``transport`` names the transport once connected.
    """

    def __init__(
        self,
        spec: McpServerSpec,
        *,
        allow_private: bool = False,
        connect_timeout: float = 10.0,
        call_timeout: float = 60.0,
        list_timeout: float = 30.0,
        max_output_bytes: int = 100_000,
        max_tools: int = 256,
        max_response_bytes: int = 4_000_000,
    ) -> None:
        self.spec = spec
        self.transport: Transport | None = None
        self._allow_private = allow_private
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._list_timeout = list_timeout
        self._max_output_bytes = max_output_bytes
        self._max_tools = max_tools
        self._max_response_bytes = max_response_bytes
        self._task: asyncio.Task[None] | None = None
        self._send: MemoryObjectSendStream[_Request] | None = None
        self._ready = asyncio.Event()
        self._connected = False
        self._closing = False
        self._failure: _Failure | None = None
        self._scope: CancelScope | None = None
        self._last_status = 0
        self._inflight: set[_Request] = set()

    # -- the caller's side ----------------------------------------------------------------------------------

    async def __aenter__(self) -> McpConnection:
        import anyio

        if self._task is not None:
            raise RuntimeError("an McpConnection can be entered once")
        send, receive = anyio.create_memory_object_stream[_Request](math.inf)
        self._send = send
        self._task = asyncio.get_running_loop().create_task(self._run(receive), name=f"mcp:{self.spec.server_label}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        import anyio

        task, self._closing = self._task, True
        if task is None or self._send is None:
            return
        self._send.close()
        if not self._connected and self._scope is not None:
            self._scope.cancel()  # stop a connection attempt at once
        with anyio.CancelScope(shield=True):
            done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE + 0.5)
            if not done:
                _log_warning("MCP connection did not close in time", server_label=self.spec.server_label)
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)

    async def list_tools(self) -> list[McpTool]:
        """All the server's tools (every page, at most ``max_tools``); :class:`McpError` if that is impossible."""
        result = await self._submit(_Request("list", asyncio.get_running_loop().create_future()))
        if isinstance(result, _Failure):
            raise McpError(result.message)
        assert isinstance(result, list)
        return result

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> McpCallResult:
        """Call one tool. Failures of any kind become ``McpCallResult.error``; only cancellation propagates."""
        request = _Request("call", asyncio.get_running_loop().create_future(), name, dict(arguments))
        result = await self._submit(request)
        if isinstance(result, _Failure):
            return result.result()
        assert isinstance(result, McpCallResult)
        return result

    async def _submit(self, request: _Request) -> Any:
        import anyio

        if self._task is None or self._send is None:
            raise RuntimeError("use 'async with open_connection(...)' before listing or calling tools")
        await self._ready.wait()
        if not self._connected:
            return self._failure or self._lost()
        try:
            self._send.send_nowait(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return self._failure or self._lost()
        return await request.future

    def _lost(self, error: BaseException | None = None) -> _Failure:
        message = f"The connection to MCP server '{self.spec.server_label}' was closed"
        if error is not None:
            from mcp import MCPError

            leaf = next(iter(_leaves(error)), error)
            detail = leaf.message if isinstance(leaf, MCPError) else _connect_reason(leaf)
            message = f"The connection to MCP server '{self.spec.server_label}' was lost: {detail}"
        return _Failure(message, {"type": "http_error", "code": 0, "message": message})

    # -- the background task -------------------------------------------------------------------------------

    async def _run(self, receive: MemoryObjectReceiveStream[_Request]) -> None:
        import anyio

        try:
            await self._connect_and_serve(receive)
        except BaseException as exc:  # the task must end quietly whatever happened
            if not self._connected and self._failure is None and not self._closing:
                self._failure = self._classify(exc, [], timed_out=False)
            _log_debug("MCP connection task ended with an error", server_label=self.spec.server_label, error=repr(exc))
        finally:
            self._ready.set()
            # Requests running or queued when the session ended get the reason rather than waiting forever.
            failure = self._failure or self._lost()
            for request in self._inflight:
                self._resolve(request, failure)
            self._inflight.clear()
            while True:
                try:
                    request = receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                self._resolve(request, failure)
            receive.close()

    def _resolve(self, request: _Request, value: Any) -> None:
        if not request.future.done():
            request.future.set_result(value)

    def _order(self) -> list[tuple[Transport, bool]]:
        if self.spec.transport == "sse":
            legacy = _preferred.get(self.spec.server_url, ("sse", False))[1]
            return [("sse", legacy)]
        cached = _preferred.get(self.spec.server_url)
        if cached is not None:  # what worked last time first; the other transport still on a 400/404/405
            return [cached, ("sse" if cached[0] == "streamable_http" else "streamable_http", False)]
        from urllib.parse import urlsplit

        first: list[Transport] = (
            ["sse", "streamable_http"]
            if urlsplit(self.spec.server_url).path.rstrip("/").endswith("/sse")
            else ["streamable_http", "sse"]
        )
        return [(kind, False) for kind in first]

    async def _connect_and_serve(self, receive: MemoryObjectReceiveStream[_Request]) -> None:
        order = self._order()
        for index, (kind, legacy) in enumerate(order):
            statuses: list[int] = []
            outcome = await self._attempt(kind, legacy, statuses, receive)
            if outcome is None or self._closing:
                return
            error, timed_out = outcome
            bad = [s for s in statuses if s >= 400]
            fall_back = (
                not timed_out
                and index + 1 < len(order)
                and not any(200 <= s < 300 for s in statuses)
                and (
                    any(s in (400, 404, 405) for s in bad)
                    or any(_status_of(leaf) in (400, 404, 405) for leaf in (_leaves(error) if error else []))
                )
                and not any(s in (401, 403) for s in bad)
            )
            if fall_back:
                _log_debug("MCP transport fallback", server_label=self.spec.server_label, tried=kind, statuses=bad)
                continue
            _preferred.pop(self.spec.server_url, None)
            self._failure = self._classify(error, statuses, timed_out=timed_out)
            _log_warning(
                "MCP server unusable",
                server_label=self.spec.server_label,
                url=_origin(self.spec.server_url),
                transport=kind,
                statuses=statuses,
                error=repr(error),
            )
            return

    async def _attempt(
        self, kind: Transport, legacy: bool, statuses: list[int], receive: MemoryObjectReceiveStream[_Request]
    ) -> tuple[BaseException | None, bool] | None:
        """Connect with ``kind`` and serve requests until closed. None once connected (or when closing), else
        ``(error, timed_out)`` for a connection that could not be made."""
        from contextlib import AsyncExitStack

        import anyio
        from mcp import Client
        from mcp_types import Implementation
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

        error: BaseException | None = None
        scope = anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout)
        self._scope = scope
        try:
            with scope:
                async with AsyncExitStack() as stack:
                    target = await self._transport(kind, statuses, stack)
                    client = Client(
                        target,
                        read_timeout_seconds=self._call_timeout,
                        mode="legacy" if legacy else "auto",
                        client_info=Implementation(name="responses-api", version="1.0"),
                        cache=None,
                    )
                    await stack.enter_async_context(client)
                    scope.deadline = math.inf
                    self._connected, self.transport = True, kind
                    self._remember(kind, client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS)
                    self._ready.set()
                    await self._serve(client, receive)
                    scope.deadline = anyio.current_time() + _CLOSE_GRACE  # bounds the session's DELETE and teardown
        except BaseException as exc:  # classified below; SDK errors arrive as ExceptionGroups
            if self._connected or self._closing:
                _log_debug("MCP session ended with an error", server_label=self.spec.server_label, error=repr(exc))
                if not self._closing and not isinstance(exc, asyncio.CancelledError):
                    self._failure = self._lost(exc)
                return None
            error = exc
        if self._connected or self._closing:
            return None
        return error, scope.cancel_called

    def _remember(self, kind: Transport, legacy: bool) -> None:
        url = self.spec.server_url
        if url not in _preferred and len(_preferred) >= _PREFERRED_MAX:
            _preferred.pop(next(iter(_preferred)))
        _preferred[url] = (kind, legacy)

    async def _transport(self, kind: Transport, statuses: list[int], stack: AsyncExitStack) -> Any:
        import httpx2

        make = _http_client_factory()

        async def hook(response: httpx2.Response) -> None:
            statuses.append(response.status_code)
            if response.status_code >= 400:
                self._last_status = response.status_code
            per_request = _request_statuses.get()
            if per_request is not None:
                per_request.append(response.status_code)

        headers = dict(self.spec.headers)
        if kind == "streamable_http":
            from mcp.client.streamable_http import streamable_http_client

            read = max(self._call_timeout, self._list_timeout) + 5.0
            timeout = httpx2.Timeout(self._connect_timeout, read=read)
            http = await stack.enter_async_context(
                make(self._allow_private, self._max_response_bytes, hook, headers=headers, timeout=timeout)
            )
            return streamable_http_client(
                self.spec.server_url, http_client=http, max_sse_event_size=self._max_response_bytes
            )

        from mcp.client.sse import sse_client

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return make(
                self._allow_private, self._max_response_bytes, hook, headers=headers, timeout=timeout, auth=auth
            )

        # The event stream may sit idle while the model thinks between calls: its read timeout is generous, and
        # each request has its own deadline (read_timeout_seconds).
        return sse_client(
            self.spec.server_url,
            headers=headers,
            timeout=self._connect_timeout,
            sse_read_timeout=max(300.0, self._call_timeout + 30.0),
            httpx_client_factory=factory,
        )

    async def _serve(self, client: Client, receive: MemoryObjectReceiveStream[_Request]) -> None:
        import anyio

        async with anyio.create_task_group() as tg:
            async for request in receive:
                tg.start_soon(self._handle, client, request)
            tg.cancel_scope.cancel()  # closing: requests still running get the "closed" failure

    async def _handle(self, client: Client, request: _Request) -> None:
        import anyio

        if request.future.done():  # the caller went away before the request started
            return
        with anyio.CancelScope() as scope:
            # The caller being cancelled cancels the request (the server is told with notifications/cancelled).
            request.future.add_done_callback(lambda future: scope.cancel() if future.cancelled() else None)
            # If the session dies or is closed meanwhile, _run answers the request once it knows why.
            self._inflight.add(request)
            try:
                if request.kind == "list":
                    self._resolve(request, await self._list(client))
                else:
                    self._resolve(request, await self._call(client, request.name, request.arguments))
            finally:
                if request.future.done():
                    self._inflight.discard(request)

    async def _list(self, client: Client) -> list[McpTool] | _Failure:
        import anyio
        from mcp import MCPError

        label = self.spec.server_label
        statuses: list[int] = []
        token = _request_statuses.set(statuses)
        tools: list[McpTool] = []
        try:
            with anyio.fail_after(self._list_timeout):
                cursor: str | None = None
                seen: set[str] = set()
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    for tool in page.tools:
                        annotations = (
                            tool.annotations.model_dump(by_alias=True, exclude_none=True, mode="json")
                            if tool.annotations is not None
                            else None
                        )
                        tools.append(McpTool(tool.name, dict(tool.input_schema), tool.description, annotations))
                    cursor = page.next_cursor
                    if len(tools) >= self._max_tools or not cursor or cursor in seen:
                        break
                    seen.add(cursor)
            if len(tools) > self._max_tools:
                _log_warning("MCP server lists too many tools", server_label=label, kept=self._max_tools)
            return tools[: self._max_tools]
        except TimeoutError:
            message = f"MCP server '{label}' did not list its tools within {_seconds(self._list_timeout)}"
            return _Failure(message, {"type": "mcp_protocol_error", "code": _REQUEST_TIMEOUT, "message": message})
        except MCPError as exc:
            status = max((s for s in statuses if s >= 400), default=0)
            if exc.message in _HTTP_STAND_INS and status:
                return _http_failure(label, status)
            message = f"MCP server '{label}' failed to list tools: {exc.message} (code {exc.code})"
            return _Failure(message, {"type": "mcp_protocol_error", "code": exc.code, "message": message})
        except Exception as exc:  # e.g. a listing that does not validate
            message = f"MCP server '{label}' failed to list tools: {type(exc).__name__}: {exc}"
            return _Failure(message, {"type": "mcp_protocol_error", "code": _INTERNAL_ERROR, "message": message})
        finally:
            _request_statuses.reset(token)

    async def _call(self, client: Client, name: str, arguments: dict[str, Any]) -> McpCallResult:
        import anyio
        from mcp import MCPError

        statuses: list[int] = []
        token = _request_statuses.set(statuses)
        try:
            # The SDK times the request out first (read_timeout_seconds); this outer bound is a backstop.
            with anyio.fail_after(self._call_timeout + 5.0):
                result = await client.call_tool(name, arguments, read_timeout_seconds=self._call_timeout)
            return _call_result(result, self._max_output_bytes)
        except TimeoutError:
            message = f"Request 'tools/call' timed out after {_seconds(self._call_timeout)}"
            return McpCallResult(None, {"type": "mcp_protocol_error", "code": _REQUEST_TIMEOUT, "message": message})
        except MCPError as exc:
            status = max((s for s in statuses if s >= 400), default=0)
            if exc.message in _HTTP_STAND_INS and (status or self._last_status):
                code = status or self._last_status
                return McpCallResult(None, {"type": "http_error", "code": code, "message": f"HTTP {code}"})
            message = exc.message
            if exc.code == _REQUEST_TIMEOUT:
                message = f"Request 'tools/call' timed out after {_seconds(self._call_timeout)}"
            return McpCallResult(None, {"type": "mcp_protocol_error", "code": exc.code, "message": message})
        except Exception as exc:  # e.g. a result that does not match the tool's output schema
            message = f"{type(exc).__name__}: {exc}"
            return McpCallResult(None, {"type": "mcp_protocol_error", "code": _INTERNAL_ERROR, "message": message})
        finally:
            _request_statuses.reset(token)

    def _classify(self, error: BaseException | None, statuses: list[int], *, timed_out: bool) -> _Failure:
        """One clear failure for a connection that could not be made."""
        import httpx2
        from mcp import MCPError

        label = self.spec.server_label
        leaves = _leaves(error) if error is not None else []

        def transport_failure(message: str) -> _Failure:
            return _Failure(message, {"type": "http_error", "code": 0, "message": message})

        if any(_BLOCKED in str(leaf) for leaf in leaves):
            return transport_failure(f"MCP server '{label}' resolves to a non-public address")
        bad = [s for s in statuses if s >= 400] + [s for s in map(_status_of, leaves) if s >= 400]
        for status in (401, 403):
            if status in bad:
                return _http_failure(label, status)
        if bad and not any(200 <= s < 300 for s in statuses):
            return _http_failure(label, bad[0])
        for leaf in leaves:
            if isinstance(leaf, httpx2.ConnectError | ConnectionError):
                return transport_failure(f"Could not connect to MCP server '{label}': {_connect_reason(leaf)}")
        if timed_out or any(isinstance(leaf, TimeoutError | httpx2.TimeoutException) for leaf in leaves):
            return transport_failure(f"MCP server '{label}' timed out after {_seconds(self._connect_timeout)}")
        for leaf in leaves:
            if isinstance(leaf, MCPError):
                message = f"MCP server '{label}' failed the MCP handshake: {leaf.message} (code {leaf.code})"
                return _Failure(message, {"type": "mcp_protocol_error", "code": leaf.code, "message": message})
        for leaf in leaves:
            if isinstance(leaf, httpx2.TransportError):
                return transport_failure(f"Could not connect to MCP server '{label}': {_connect_reason(leaf)}")
        detail = next((f"{type(leaf).__name__}: {leaf}" for leaf in leaves), "no answer")
        return transport_failure(f"MCP server '{label}' could not be used: {detail}")


def _status_of(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", 0)
    return status if isinstance(status, int) else 0
