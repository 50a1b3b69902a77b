"""WebSocket mode: ``response.create`` messages on one persistent connection, answered with the events SSE
carries (Open Responses 2026-04-24 "WebSocket Transport"; OpenAI's WebSocket mode).

Deployed behind an API Gateway WebSocket API, whose integrations must answer within 29 s:

- ``$connect`` → :func:`connect`: the REST API's authorizer has checked the key; the connection is recorded with
  its tenant (``storage.connections``).
- ``$default`` → :func:`receive`: a message is validated (a bad one is answered with an error event at once), then
  either handed to the worker with an asynchronous Lambda invoke, or, while a response runs, queued.
- the worker → :func:`serve_connection`: runs the message and then every queued one, one at a time, posting each
  event with PostToConnection; a 4xx is an error event, never a dropped socket.
- ``$disconnect`` → :func:`disconnect`: the connection's state is deleted.

Connection-local state: the most recent response (stored or not) is cached under the connection, so
``previous_response_id`` naming it continues without reading the chain; any other id is loaded from storage as
over HTTP, so a ``store:false`` response is ``previous_response_not_found`` on any other connection. A continuation
that fails (an error event, or a ``failed`` response) evicts the response it named.

The three routes live in :mod:`engine.responses.websocket_routes` (named here too), so their functions do not load
the worker's imports (the turn loop, the providers, the tools) at cold start.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any

from pydantic_core import from_json, to_json

from engine.errors import APIError, PreviousResponseNotFoundError
from engine.models.events import ResponseErrorEvent, ResponseStreamEvent
from engine.models.request import ResponseCreateParams
from engine.observability import logger
from engine.responses.create import CreateRun, prepare_create, run_create
from engine.responses.persist import store_finished
from engine.responses.websocket_routes import (
    _channel,
    _connections,
    _limit_error,
    _limit_reached,
    _worker,
    connect,
    disconnect,
    error_message,
    parse_create,
    receive,
)
from engine.settings import get_settings
from engine.storage import StoredContext, get_store
from engine.storage.connections import Connection

__all__ = [
    "_channel",
    "_connections",
    "_worker",
    "connect",
    "disconnect",
    "encode_event",
    "error_message",
    "parse_create",
    "receive",
    "run_worker",
    "serve_connection",
]


# --- the wire format (the worker's side) ---------------------------------------------------------------------


def encode_event(event: ResponseStreamEvent) -> bytes:
    """One event, as SSE's ``data:`` carries it; the flat in-stream ``error`` event takes the WebSocket shape
    (``error`` nested, as the openai SDK's ``ResponseWsError`` and Open Responses read it)."""
    if isinstance(event, ResponseErrorEvent):
        return to_json(
            {
                "type": "error",
                "sequence_number": event.sequence_number,
                "error": {
                    "type": "server_error",
                    "code": event.code or "server_error",
                    "message": event.message,
                    "param": event.param,
                },
            }
        )
    return event.model_dump_json().encode()


# --- the worker -------------------------------------------------------------------------------------------------


class _Sender:
    """Posts a turn's messages in order from a task of their own, so the model's stream is not held up by each
    PostToConnection round trip. ``gone`` once the client has left."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.gone = False
        self._limit = get_settings().websocket_max_message_bytes
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def send(self, data: bytes, sequence_number: int | None = None) -> None:
        if len(data) > self._limit:
            # API Gateway refuses a message over 128 KB; say which event could not be sent rather than drop it.
            data = to_json(
                {
                    "type": "error",
                    "status": 413,
                    "sequence_number": sequence_number,
                    "error": {
                        "type": "invalid_request_error",
                        "code": "message_too_large",
                        "message": f"An event of {len(data)} bytes could not be sent: WebSocket messages are limited "
                        f"to {self._limit} bytes. Retrieve the response over HTTP (store=true), or stream it there.",
                        "param": None,
                    },
                }
            )
        self._queue.put_nowait(data)

    async def _run(self) -> None:
        channel = _channel()
        while (data := await self._queue.get()) is not None:
            if not self.gone and not await asyncio.to_thread(channel.post, self.connection_id, data):
                self.gone = True

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task


# A warm worker keeps the last context it cached per connection: when the record still names it, the rows need not
# be read back. The table stays the source of truth (another environment may serve the connection next).
_MEMO_SIZE = 256
_memo: OrderedDict[str, tuple[str, int, bytes]] = OrderedDict()
_memo_lock = threading.Lock()


def _remember(connection: Connection, items: list[dict[str, Any]]) -> None:
    assert connection.cached_id is not None
    with _memo_lock:
        _memo[connection.connection_id] = (connection.cached_id, connection.cached_count, to_json(items))
        _memo.move_to_end(connection.connection_id)
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)


def _recall(connection: Connection) -> list[dict[str, Any]] | None:
    with _memo_lock:
        found = _memo.get(connection.connection_id)
    if found is None or found[:2] != (connection.cached_id, connection.cached_count):
        return None
    return list(from_json(found[2]))  # a fresh copy: the create path may add to the items it is given


async def _cached_items(connection: Connection) -> list[dict[str, Any]]:
    items = _recall(connection)
    if items is None:
        store = _connections()
        items = await asyncio.to_thread(store.cached_items, connection.connection_id, connection.cached_count)
    return items


async def _previous(connection: Connection, params: ResponseCreateParams) -> tuple[StoredContext | None, bool]:
    """The context ``previous_response_id`` names, and whether it is the connection's cached response."""
    previous_id = params.previous_response_id
    if not previous_id:
        return None, False
    if previous_id == connection.cached_id:
        items = await _cached_items(connection)
        return StoredContext(items=items, ancestors=list(connection.cached_chain)), True
    loaded = await asyncio.to_thread(get_store().load_context, connection.tenant, previous_id)
    if loaded is None:
        raise PreviousResponseNotFoundError(previous_id)
    return loaded, False


async def _evict(connection: Connection, response_id: str | None) -> None:
    if response_id and connection.cached_id == response_id:
        await asyncio.to_thread(_connections().evict, connection.connection_id, response_id)
        connection.cached_id, connection.cached_chain, connection.cached_count = None, (), 0


async def _cache(connection: Connection, run: CreateRun, previous: StoredContext | None, extends: bool) -> None:
    """Make this response the connection's cached one. Its context is what a stored copy would give back:
    the chain's items, its input, its output (a conversation's items are not part of it, as over HTTP)."""
    new = run.input_items + [item.model_dump() for item in run.response.output]
    kept = previous.items if previous and run.params.conversation is None else []
    start, items = (connection.cached_count, new) if extends else (0, kept + new)
    chain = [*run.ancestors, run.response.id]
    await asyncio.to_thread(_connections().cache, connection, run.response.id, chain, start, items)
    connection.cached_id, connection.cached_chain, connection.cached_count = (
        run.response.id,
        tuple(chain),
        start + len(items),
    )
    _remember(connection, kept + new)


async def _warm_up(run: CreateRun) -> AsyncGenerator[ResponseStreamEvent]:
    """``generate: false``: the request is checked and becomes the connection's cached response (stored too, with
    ``store``) without a model turn: ``response.created``, ``response.in_progress``, ``response.completed`` with no
    output. The next turn continues from it with only its new items."""
    stream = run.new_stream()
    for event in stream.start():
        yield event
    stream.finish(None)
    for event in await store_finished(run, stream):
        yield event
    yield stream.terminal()


async def _run_turn(connection: Connection, body: str, sender: _Sender) -> None:
    previous_id: str | None = None
    try:
        params, generate = parse_create(body)
        previous_id = params.previous_response_id
        previous, extends = await _previous(connection, params)
        run = await prepare_create(params, connection.tenant, previous=previous)
    except APIError as exc:
        await _evict(connection, previous_id)
        sender.send(error_message(exc))
        return
    events = run_create(run) if generate else _warm_up(run)
    try:
        async for event in events:
            sender.send(encode_event(event), event.sequence_number)
            if sender.gone:  # the client left: stop the model, as a dropped HTTP stream does
                return
    finally:
        await events.aclose()
    if run.response.status in ("completed", "incomplete"):
        try:
            await _cache(connection, run, previous, extends)
        except Exception:
            # Its terminal event is out: an error now would read as the next turn's. Uncached, a continuation of
            # it is loaded from the table (stored) or is a truthful previous_response_not_found.
            logger.exception("could not cache the response on its connection", extra={"response_id": run.response.id})
    else:
        await _evict(connection, previous_id)


async def serve_connection(connection_id: str, request: str | None = None, connection: Connection | None = None) -> int:
    """The worker: ``request`` (when the connection was idle), then every queued message, one response at a time;
    then the connection is released for the next ``$default``. ``connection``: the record as ``$default`` acquired
    it (read from the table when not given). Returns how many messages it ran."""
    store = _connections()
    if connection is None:
        connection = await asyncio.to_thread(store.connection, connection_id)
    if connection is None:
        return 0
    sender, served, failed = _Sender(connection_id), 0, False
    try:
        while not sender.gone:
            body = request if request is not None else await asyncio.to_thread(store.dequeue, connection_id)
            request = None
            if body is None:
                await asyncio.to_thread(store.release, connection_id)
                # A message queued between the last look and the release found the connection busy and left it
                # to us: look again, and take the connection back if it is there.
                if not await asyncio.to_thread(store.has_queued, connection_id):
                    return served
                if await asyncio.to_thread(store.acquire, connection_id) is None:
                    return served
                continue
            served += 1
            if _limit_reached(connection):
                sender.send(error_message(_limit_error()))
                await sender.close()  # the error goes out before the connection is closed
                await asyncio.to_thread(_channel().close, connection_id)
                return served
            try:
                await _run_turn(connection, body, sender)
            except Exception:
                logger.exception("websocket turn failed")
                sender.send(error_message(APIError("The server had an error processing your request.")))
    except Exception:
        # The queue or the record could not be read or written: say so, and free the connection rather than
        # leave it busy (every later message would queue behind a worker that is gone, for busy_seconds).
        logger.exception("websocket worker failed between turns")
        sender.send(error_message(APIError("The server could not take your next message. Send it again.")))
        failed = True
    finally:
        await sender.close()
        if sender.gone or failed:
            await asyncio.to_thread(store.release, connection_id)
    return served


_loops = threading.local()


def run_worker(event: dict[str, Any]) -> int:
    """The worker's entry point for the payload ``{"connection_id", "request"?}``. One event loop per thread, kept
    between invocations, so a warm environment reuses its upstream connections (its aiohttp session)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    given = event.get("connection")
    connection = Connection(**{**given, "cached_chain": tuple(given["cached_chain"])}) if given else None
    return loop.run_until_complete(serve_connection(str(event["connection_id"]), event.get("request"), connection))
