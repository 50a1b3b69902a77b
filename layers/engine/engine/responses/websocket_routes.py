"""WebSocket mode's API Gateway routes, ``$connect``, ``$default`` and ``$disconnect``, and the wire format they
share with the worker (:mod:`engine.responses.websocket` tells the whole design).

Apart from the worker so the route functions do not import the turn loop, the providers and the tools at cold
start: ``$connect`` and ``$disconnect`` only write the connection's record, ``$default`` only checks a message and
hands it over.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json, to_json

from engine.errors import APIError, InvalidRequestError, from_validation_errors
from engine.models.request import ResponseCreateParams
from engine.observability import logger
from engine.settings import get_settings
from engine.storage.connections import Connection, ConnectionChannel, ConnectionStore, WorkerInvoker

__all__ = ["connect", "disconnect", "error_message", "parse_create", "receive"]

# Fields that only mean something over HTTP: the socket always streams, and background is not offered here.
_TRANSPORT_FIELDS = ("stream", "stream_options")


@lru_cache(maxsize=1)
def _connections() -> ConnectionStore:
    settings = get_settings()
    return ConnectionStore(settings.table_name, settings.websocket_state_ttl_seconds)


@lru_cache(maxsize=1)
def _channel() -> ConnectionChannel:
    return ConnectionChannel(get_settings().websocket_endpoint)


@lru_cache(maxsize=1)
def _worker() -> WorkerInvoker:
    settings = get_settings()
    return WorkerInvoker(settings.websocket_worker_function, settings.lambda_endpoint_url)


# --- the wire format --------------------------------------------------------------------------------------------


def error_message(exc: APIError) -> bytes:
    """The WebSocket error envelope: ``{"type": "error", "status", "error": {"type", "code", "message", "param"}}``.
    ``code`` is always a string here (the envelope requires one): the error's type when it has no code."""
    return to_json(
        {
            "type": "error",
            "status": exc.status_code,
            "error": {"type": exc.type, "code": exc.code or exc.type, "message": exc.message, "param": exc.param},
        }
    )


def parse_create(body: str | bytes | None) -> tuple[ResponseCreateParams, bool]:
    """A client message → the create request it carries and whether to generate (``generate: false`` prepares the
    connection's state without a model turn, OpenAI's warm-up); 400 for anything but a valid ``response.create``."""
    try:
        message = from_json(body or b"")
    except ValueError:
        raise InvalidRequestError(
            "We could not parse the JSON of your message. Each message must be a JSON object.", code="invalid_json"
        ) from None
    if not isinstance(message, dict):
        raise InvalidRequestError("Each message must be a JSON object.", code="invalid_type")
    kind = message.pop("type", None)
    if kind == "response.steer":
        raise InvalidRequestError(
            "Steering is not supported by this server: send a new response.create with previous_response_id.",
            param="type",
            code="steering_not_supported",
        )
    if kind != "response.create":
        raise InvalidRequestError(
            f'Unsupported message type {kind!r}: send {{"type": "response.create", ...}}.',
            param="type",
            code="invalid_event_type",
        )
    if message.pop("background", None):
        raise InvalidRequestError(
            "background is not supported in WebSocket mode: use POST /v1/responses with background=true.",
            param="background",
        )
    for name in _TRANSPORT_FIELDS:
        message.pop(name, None)
    generate = message.pop("generate", True)
    if not isinstance(generate, bool):
        raise InvalidRequestError("'generate' must be a boolean.", param="generate", code="invalid_type")
    try:
        return ResponseCreateParams.model_validate_json(to_json(message)), generate
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from None


def _limit_reached(connection: Connection) -> bool:
    return time.time() - connection.connected_at >= get_settings().websocket_max_connection_seconds


def _limit_error() -> InvalidRequestError:
    minutes = get_settings().websocket_max_connection_seconds // 60
    return InvalidRequestError(
        f"This WebSocket connection reached its limit of {minutes} minutes. Open a new connection to continue.",
        code="websocket_connection_limit_reached",
    )


# --- $connect, $default, $disconnect ----------------------------------------------------------------------------


def connect(connection_id: str, tenant: str, connected_at: int | None = None) -> None:
    _connections().open(connection_id, tenant, connected_at or int(time.time()))


def disconnect(connection_id: str) -> None:
    _connections().close(connection_id)


def receive(connection_id: str, body: str | None, received_ms: int, message_id: str) -> None:
    """``$default``: answer a bad message with an error event, else start it (the connection was idle) or queue it
    behind the response in flight. Never waits for a model. A message that could be neither started nor queued
    is answered with an error event (the client would otherwise wait for it forever)."""
    channel = _channel()
    try:
        parse_create(body)
    except APIError as exc:
        channel.post(connection_id, error_message(exc))
        return
    try:
        _start_or_queue(connection_id, body or "", f"{received_ms:013d}#{message_id}")
    except Exception:
        logger.exception("could not start or queue a websocket message")
        channel.post(connection_id, error_message(APIError("The server could not take your message. Send it again.")))


def _start_or_queue(connection_id: str, body: str, key: str) -> None:
    store, channel = _connections(), _channel()
    # An idle connection's message runs at once, without a trip through the queue, unless messages are waiting
    # (queued while a response ran, and not yet taken by its worker): then it queues behind them, in order.
    connection = store.acquire(connection_id)
    if connection is not None:
        if _limit_reached(connection):
            store.release(connection_id)
            channel.post(connection_id, error_message(_limit_error()))
            channel.close(connection_id)
            return
        if connection.pending > 0:
            try:
                queued = store.enqueue(connection, key, body)
            except Exception:
                store.release(connection_id)  # no worker was started: the connection must not stay busy
                raise
            if queued:
                _hand_over(connection, None)
        else:
            _hand_over(connection, body)
        return
    busy = store.connection(connection_id)
    if busy is None:
        return  # the connection is gone
    # Ordered by API Gateway's receive time: $default invocations of one connection may overlap.
    if not store.enqueue(busy, key, body):
        return  # gone meanwhile
    # The worker releases the connection, then looks at the queue once more; whichever of us wins the connection
    # runs what is queued.
    if (acquired := store.acquire(connection_id)) is not None:
        _hand_over(acquired, None)


def _hand_over(connection: Connection, body: str | None) -> None:
    """Invoke the worker for an acquired connection; if that fails, free the connection and say so."""
    payload: dict[str, Any] = {"connection_id": connection.connection_id, "connection": asdict(connection)}
    if body is not None:
        payload["request"] = body
    try:
        _worker().invoke(payload)
    except Exception:
        logger.exception("could not invoke the websocket worker")
        _connections().release(connection.connection_id)
        error = APIError("The server could not start your response. Send it again.")
        _channel().post(connection.connection_id, error_message(error))
