"""How the client reaches a server: the HTTP client every MCP transport uses (one verifying SSLContext, the
SSRF-guarded network backend, the response-size cap), the SDK transport for ``streamable_http`` or legacy
``sse``, and which transport to try first for a URL (the one that worked last time is remembered per process).

``httpx2``, ``httpcore2``, ``anyio`` and the ``mcp`` SDK are imported inside functions only.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.tools.mcp.base import McpServerSpec, Transport
from engine.tools.mcp.guard import address_allowed

if TYPE_CHECKING:
    import ssl
    from contextlib import AsyncExitStack

    import httpx2

__all__ = [
    "BLOCKED",
    "TOO_LARGE",
    "forget",
    "open_transport",
    "remember",
    "request_statuses",
    "transport_order",
]

BLOCKED = "refused by the MCP destination policy"
TOO_LARGE = "MCP response larger than"
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
            if not addresses or not all(address_allowed(a, self.allow_private) for a in addresses):
                raise httpcore2.ConnectError(BLOCKED)
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
                    raise ResponseTooLarge(f"{TOO_LARGE} {self.limit} bytes")
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
                error = {"code": -32000, "message": f"{TOO_LARGE} {self.limit} bytes"}
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


# The HTTP statuses of the requests made on behalf of one list/call (the SDK reports them only as MCPError).
request_statuses: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("mcp_statuses", default=None)
# Transport that worked per URL, and whether that server needed the pre-2026 initialize handshake.
_preferred: dict[str, tuple[Transport, bool]] = {}
_PREFERRED_MAX = 1024


def transport_order(spec: McpServerSpec) -> list[tuple[Transport, bool]]:
    """The transports to try for ``spec``, in order, each with whether to use the pre-2026 handshake."""
    if spec.transport == "sse":
        legacy = _preferred.get(spec.server_url, ("sse", False))[1]
        return [("sse", legacy)]
    cached = _preferred.get(spec.server_url)
    if cached is not None:  # what worked last time first; the other transport still on a 400/404/405
        return [cached, ("sse" if cached[0] == "streamable_http" else "streamable_http", False)]
    from urllib.parse import urlsplit

    first: list[Transport] = (
        ["sse", "streamable_http"]
        if urlsplit(spec.server_url).path.rstrip("/").endswith("/sse")
        else ["streamable_http", "sse"]
    )
    return [(kind, False) for kind in first]


def remember(url: str, kind: Transport, legacy: bool) -> None:
    """``kind`` worked for ``url`` (with the pre-2026 handshake when ``legacy``): try it first next time."""
    if url not in _preferred and len(_preferred) >= _PREFERRED_MAX:
        _preferred.pop(next(iter(_preferred)))
    _preferred[url] = (kind, legacy)


def forget(url: str) -> None:
    """Nothing worked for ``url``: start from the default order next time."""
    _preferred.pop(url, None)


async def open_transport(
    kind: Transport,
    spec: McpServerSpec,
    stack: AsyncExitStack,
    *,
    on_status: Callable[[int], None],
    allow_private: bool,
    max_response_bytes: int,
    connect_timeout: float,
    call_timeout: float,
    list_timeout: float,
) -> Any:
    """The SDK transport for ``kind`` (its HTTP client entered on ``stack``); every HTTP status the server answers
    goes to ``on_status`` and to the current list/call's ``request_statuses``."""
    import httpx2

    make = _http_client_factory()

    async def hook(response: httpx2.Response) -> None:
        on_status(response.status_code)
        per_request = request_statuses.get()
        if per_request is not None:
            per_request.append(response.status_code)

    headers = dict(spec.headers)
    if kind == "streamable_http":
        from mcp.client.streamable_http import streamable_http_client

        read = max(call_timeout, list_timeout) + 5.0
        timeout = httpx2.Timeout(connect_timeout, read=read)
        http = await stack.enter_async_context(
            make(allow_private, max_response_bytes, hook, headers=headers, timeout=timeout)
        )
        return streamable_http_client(spec.server_url, http_client=http, max_sse_event_size=max_response_bytes)

    from mcp.client.sse import sse_client

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return make(allow_private, max_response_bytes, hook, headers=headers, timeout=timeout, auth=auth)

    # The event stream may sit idle while the model thinks between calls: its read timeout is generous, and
    # each request has its own deadline (read_timeout_seconds).
    return sse_client(
        spec.server_url,
        headers=headers,
        timeout=connect_timeout,
        sse_read_timeout=max(300.0, call_timeout + 30.0),
        httpx_client_factory=factory,
    )
