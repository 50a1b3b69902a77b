"""One MCP session per server per response: :func:`open_connection` gives an :class:`McpConnection` whose
``list_tools`` and ``call_tool`` are served by a background task that owns the SDK client. The transport is
chosen and opened by ``transport``; what goes wrong is put in OpenAI's shapes by ``results``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.tools.mcp.base import McpError, McpServerSpec, McpTool, Transport, log_debug, log_warning
from engine.tools.mcp.guard import origin
from engine.tools.mcp.results import (
    HTTP_STAND_INS,
    INTERNAL_ERROR,
    REQUEST_TIMEOUT,
    Failure,
    McpCallResult,
    call_result,
    connect_failure,
    http_failure,
    leaves,
    lost,
    seconds,
    status_of,
)
from engine.tools.mcp.transport import forget, open_transport, remember, request_statuses, transport_order

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from anyio import CancelScope
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from mcp import Client

__all__ = ["McpConnection", "open_connection"]

_CLOSE_GRACE = 2.0
_MAX_PAGES = 100


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
        self._failure: Failure | None = None
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
                log_warning("MCP connection did not close in time", server_label=self.spec.server_label)
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)

    async def list_tools(self) -> list[McpTool]:
        """All the server's tools (every page, at most ``max_tools``); :class:`McpError` if that is impossible."""
        result = await self._submit(_Request("list", asyncio.get_running_loop().create_future()))
        if isinstance(result, Failure):
            raise McpError(result.message)
        assert isinstance(result, list)
        return result

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> McpCallResult:
        """Call one tool. Failures of any kind become ``McpCallResult.error``; only cancellation propagates."""
        request = _Request("call", asyncio.get_running_loop().create_future(), name, dict(arguments))
        result = await self._submit(request)
        if isinstance(result, Failure):
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

    def _lost(self, error: BaseException | None = None) -> Failure:
        return lost(self.spec.server_label, error)

    def _classify(self, error: BaseException | None, statuses: list[int], *, timed_out: bool) -> Failure:
        """One clear failure for a connection that could not be made."""
        return connect_failure(
            self.spec.server_label, error, statuses, timed_out=timed_out, connect_timeout=self._connect_timeout
        )

    # -- the background task -------------------------------------------------------------------------------

    async def _run(self, receive: MemoryObjectReceiveStream[_Request]) -> None:
        import anyio

        try:
            await self._connect_and_serve(receive)
        except BaseException as exc:  # the task must end quietly whatever happened
            if not self._connected and self._failure is None and not self._closing:
                self._failure = self._classify(exc, [], timed_out=False)
            log_debug("MCP connection task ended with an error", server_label=self.spec.server_label, error=repr(exc))
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

    async def _connect_and_serve(self, receive: MemoryObjectReceiveStream[_Request]) -> None:
        order = transport_order(self.spec)
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
                    or any(status_of(leaf) in (400, 404, 405) for leaf in (leaves(error) if error else []))
                )
                and not any(s in (401, 403) for s in bad)
            )
            if fall_back:
                log_debug("MCP transport fallback", server_label=self.spec.server_label, tried=kind, statuses=bad)
                continue
            forget(self.spec.server_url)
            self._failure = self._classify(error, statuses, timed_out=timed_out)
            log_warning(
                "MCP server unusable",
                server_label=self.spec.server_label,
                url=origin(self.spec.server_url),
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
                    remember(self.spec.server_url, kind, client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS)
                    self._ready.set()
                    await self._serve(client, receive)
                    scope.deadline = anyio.current_time() + _CLOSE_GRACE  # bounds the session's DELETE and teardown
        except BaseException as exc:  # classified below; SDK errors arrive as ExceptionGroups
            if self._connected or self._closing:
                log_debug("MCP session ended with an error", server_label=self.spec.server_label, error=repr(exc))
                if not self._closing and not isinstance(exc, asyncio.CancelledError):
                    self._failure = self._lost(exc)
                return None
            error = exc
        if self._connected or self._closing:
            return None
        return error, scope.cancel_called

    async def _transport(self, kind: Transport, statuses: list[int], stack: AsyncExitStack) -> Any:
        def on_status(status: int) -> None:
            statuses.append(status)
            if status >= 400:
                self._last_status = status

        return await open_transport(
            kind,
            self.spec,
            stack,
            on_status=on_status,
            allow_private=self._allow_private,
            max_response_bytes=self._max_response_bytes,
            connect_timeout=self._connect_timeout,
            call_timeout=self._call_timeout,
            list_timeout=self._list_timeout,
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

    async def _list(self, client: Client) -> list[McpTool] | Failure:
        import anyio
        from mcp import MCPError

        label = self.spec.server_label
        statuses: list[int] = []
        token = request_statuses.set(statuses)
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
                log_warning("MCP server lists too many tools", server_label=label, kept=self._max_tools)
            return tools[: self._max_tools]
        except TimeoutError:
            message = f"MCP server '{label}' did not list its tools within {seconds(self._list_timeout)}"
            return Failure(message, {"type": "mcp_protocol_error", "code": REQUEST_TIMEOUT, "message": message})
        except MCPError as exc:
            status = max((s for s in statuses if s >= 400), default=0)
            if exc.message in HTTP_STAND_INS and status:
                return http_failure(label, status)
            message = f"MCP server '{label}' failed to list tools: {exc.message} (code {exc.code})"
            return Failure(message, {"type": "mcp_protocol_error", "code": exc.code, "message": message})
        except Exception as exc:  # e.g. a listing that does not validate
            message = f"MCP server '{label}' failed to list tools: {type(exc).__name__}: {exc}"
            return Failure(message, {"type": "mcp_protocol_error", "code": INTERNAL_ERROR, "message": message})
        finally:
            request_statuses.reset(token)

    async def _call(self, client: Client, name: str, arguments: dict[str, Any]) -> McpCallResult:
        import anyio
        from mcp import MCPError

        statuses: list[int] = []
        token = request_statuses.set(statuses)
        try:
            # The SDK times the request out first (read_timeout_seconds); this outer bound is a backstop.
            with anyio.fail_after(self._call_timeout + 5.0):
                result = await client.call_tool(name, arguments, read_timeout_seconds=self._call_timeout)
            return call_result(result, self._max_output_bytes)
        except TimeoutError:
            message = f"Request 'tools/call' timed out after {seconds(self._call_timeout)}"
            return McpCallResult(None, {"type": "mcp_protocol_error", "code": REQUEST_TIMEOUT, "message": message})
        except MCPError as exc:
            status = max((s for s in statuses if s >= 400), default=0)
            if exc.message in HTTP_STAND_INS and (status or self._last_status):
                code = status or self._last_status
                return McpCallResult(None, {"type": "http_error", "code": code, "message": f"HTTP {code}"})
            message = exc.message
            if exc.code == REQUEST_TIMEOUT:
                message = f"Request 'tools/call' timed out after {seconds(self._call_timeout)}"
            return McpCallResult(None, {"type": "mcp_protocol_error", "code": exc.code, "message": message})
        except Exception as exc:  # e.g. a result that does not match the tool's output schema
            message = f"{type(exc).__name__}: {exc}"
            return McpCallResult(None, {"type": "mcp_protocol_error", "code": INTERNAL_ERROR, "message": message})
        finally:
            request_statuses.reset(token)


# The name callers use: ``async with open_connection(spec, ...) as connection:`` (the class takes the same keywords).
open_connection = McpConnection
