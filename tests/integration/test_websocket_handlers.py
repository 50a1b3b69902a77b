"""The WebSocket API's functions with their sample events, as API Gateway and the async invoke call them, on moto's
DynamoDB and management API (PostToConnection): what the template deploys, without the local emulation."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

from tests.integration.test_handler_events import _event, _functions, _invoke, _load_module, aws  # noqa: F401

CONNECTION = "L0SM9cOFvHcCIhw="


@pytest.fixture
def websocket(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("WEBSOCKET_ENDPOINT", "https://abcdef1234.execute-api.us-east-1.amazonaws.com/responses")
    monkeypatch.setenv("WEBSOCKET_WORKER_FUNCTION", "WebSocketWorkerFunction")
    from engine.responses import websocket as mode
    from engine.settings import get_settings

    get_settings.cache_clear()
    for cached in (mode._connections, mode._channel, mode._worker):
        cached.cache_clear()


def _posted() -> list[dict[str, Any]]:
    """Every message posted to the connection (moto keeps them as one byte string)."""
    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    data = backend.get_connection(quote(CONNECTION, safe="")).data.decode()  # moto keys it URL-encoded
    decoder, out, at = json.JSONDecoder(), [], 0
    while at < len(data):
        value, at = decoder.raw_decode(data, at)
        out.append(value)
    return out


def _connect_now() -> dict[str, Any]:
    """The sample $connect event, connected now (its own connectedAt is a fixed moment in the past)."""
    event = _event("ws_connect")
    event["requestContext"]["connectedAt"] = int(time.time() * 1000)
    return event


def _rows() -> list[dict[str, Any]]:
    import boto3

    items = boto3.client("dynamodb").scan(TableName="responses-test")["Items"]
    return [r for r in items if r["pk"]["S"] == f"CONN#{CONNECTION}"]


def test_connect_message_worker_disconnect(websocket: None):
    from engine.responses.websocket import _connections

    # $connect records the connection under the authorizer's tenant, with the TTL of API Gateway's 2 hours
    assert _invoke("ws_connect", _connect_now()) == {"statusCode": 200}
    (meta,) = _rows()
    assert meta["tenant"]["S"] == "team-a"
    assert int(meta["expires_at"]["N"]) - int(meta["connected_at"]["N"]) == 7200

    # A bad message is answered at once with an error event, and nothing is queued
    bad = {**_event("ws_message"), "body": json.dumps({"type": "response.create", "model": "m", "store": "no"})}
    assert _invoke("ws_message", bad) == {"statusCode": 200}
    assert _posted()[-1]["status"] == 400 and _posted()[-1]["error"]["param"] == "store"

    # While a response runs, $default queues the message; the worker runs what is queued and releases
    assert _connections().acquire(CONNECTION) is not None
    _invoke("ws_message", _event("ws_message"))
    assert [r["sk"]["S"][:2] for r in _rows()] == ["ME", "Q#"]
    assert _invoke("ws_worker", {"connection_id": CONNECTION}) == {"connection_id": CONNECTION, "responses": 1}
    events = _posted()[1:]
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    rows = {r["sk"]["S"]: r for r in _rows()}
    assert rows["META"]["busy"]["BOOL"] is False
    assert rows["META"]["cached_id"]["S"] == events[-1]["response"]["id"]
    assert sorted(rows) == ["ITEM#000000", "ITEM#000001", "META"]  # the input and the output, nothing queued

    # $disconnect deletes every row of the connection
    assert _invoke("ws_disconnect", _event("ws_disconnect")) == {"statusCode": 200}
    assert _rows() == []


def test_worker_refuses_events_over_the_message_limit(websocket: None, monkeypatch: pytest.MonkeyPatch):
    from engine.settings import get_settings

    monkeypatch.setenv("WEBSOCKET_MAX_MESSAGE_BYTES", "1024")
    get_settings.cache_clear()
    _invoke("ws_connect", _connect_now())
    _invoke("ws_worker", _event("ws_worker"))
    events = _posted()
    # The demo model's final response is over 1 KB: it is replaced by an error naming its sequence number
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "message_too_large"
    assert events[-1]["sequence_number"] == events[-2]["sequence_number"] + 1
    assert all(len(json.dumps(e)) <= 1024 for e in events)


def test_a_connection_past_its_limit_gets_the_limit_error(websocket: None, monkeypatch: pytest.MonkeyPatch):
    from engine.storage.connections import ConnectionChannel

    # What is posted, recorded on the way to moto (which forgets a connection's data when it is deleted)
    posted: list[bytes] = []
    post = ConnectionChannel.post

    def recording(self: ConnectionChannel, connection_id: str, data: bytes) -> bool:
        posted.append(data)
        return post(self, connection_id, data)

    monkeypatch.setattr(ConnectionChannel, "post", recording)
    # A connection opened 61 minutes ago: past the 60 minutes a connection may last, its state not yet expired
    connect = _event("ws_connect")
    connect["requestContext"]["connectedAt"] = int((time.time() - 61 * 60) * 1000)
    _invoke("ws_connect", connect)
    _invoke("ws_worker", _event("ws_worker"))
    (error,) = [json.loads(data) for data in posted]
    assert error["type"] == "error" and error["error"]["code"] == "websocket_connection_limit_reached"
    # ...and the connection is closed (DeleteConnection)
    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    assert quote(CONNECTION, safe="") not in backend.connections


def test_authorizer_allows_the_connect_route_with_the_tenant(websocket: None):
    from engine.auth import display_suffix, hash_key
    from engine.storage.keys import DynamoKeyStore, KeyRecord

    spec = _functions()["authorizer"]
    _load_module(spec, "app").authenticator.cache_clear()
    key = "sk-websocket-0000000000000000000000000000000001"
    DynamoKeyStore("responses-test").add(
        KeyRecord(hash_key(key), "team-a", "active", int(time.time()), display_suffix(key))
    )
    connect = _event("ws_connect")
    arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/responses/$connect"
    event = {
        "type": "REQUEST",
        "methodArn": arn,
        "headers": {"Authorization": f"Bearer {key}"},
        "requestContext": {k: v for k, v in connect["requestContext"].items() if k != "authorizer"},
    }
    allowed = _invoke("authorizer", event)
    assert allowed["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}
    ]
    assert allowed["context"]["tenant"] == "team-a" and "usageIdentifierKey" not in allowed
    denied = _invoke("authorizer", {**event, "headers": {"Authorization": "Bearer sk-wrong"}})
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_a_connection_whose_worker_died_is_taken_over(websocket: None):
    from engine.responses.websocket import _connections

    store = _connections()
    _invoke("ws_connect", _connect_now())
    first = store.acquire(CONNECTION)
    assert first is not None and first.busy_until > time.time()
    # Busy: a second acquire fails, until the first worker's time (the worker's timeout) has run out
    assert store.acquire(CONNECTION) is None
    store.update({"pk": f"CONN#{CONNECTION}", "sk": "META"}, "SET busy_until = :past", values={":past": 1})
    assert store.acquire(CONNECTION) is not None


def test_queued_messages_keep_their_order(websocket: None):
    from engine.responses.websocket import _connections

    store = _connections()
    _invoke("ws_connect", _connect_now())

    def message(text: str, at_ms: int) -> dict[str, Any]:
        event = _event("ws_message")
        event["body"] = json.dumps({"type": "response.create", "model": "m", "store": False, "input": text})
        event["requestContext"].update(requestTimeEpoch=at_ms, messageId=f"m{at_ms}")
        return event

    # Given a response running (the connection busy), a message is queued behind it...
    assert store.acquire(CONNECTION) is not None
    _invoke("ws_message", message("first", 1000))
    # ...and its worker has released the connection but not yet looked at the queue again
    store.release(CONNECTION)
    # When another message finds the connection idle, it queues behind the waiting one instead of running first
    _invoke("ws_message", message("second", 2000))
    rows = {r["sk"]["S"]: r for r in _rows()}
    assert [k for k in rows if k.startswith("Q#")] == ["Q#0000000001000#m1000", "Q#0000000002000#m2000"]
    assert rows["META"]["pending"]["N"] == "2"
    # (moto has no worker function to invoke: the connection is released and the client told so)
    assert _posted()[-1]["error"]["message"].startswith("The server could not start your response")
    assert store.acquire(CONNECTION) is not None
    assert _invoke("ws_worker", {"connection_id": CONNECTION})["responses"] == 2
    completed = [e for e in _posted() if e["type"] == "response.completed"]
    said = [e["response"]["output"][0]["content"][0]["text"].rsplit("you said: ", 1)[1] for e in completed]
    assert said == ["'first'", "'second'"]
    assert {r["sk"]["S"]: r for r in _rows()}["META"]["pending"]["N"] == "0"
