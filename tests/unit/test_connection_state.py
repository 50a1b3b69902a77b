"""WebSocket connection state under contention, on moto: a transaction cancelled by a conflict (two writers counting
``pending`` on the same record) is tried again, a refused condition means the connection is gone, and a message that
can be neither started nor queued is answered instead of silently lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from engine.responses import websocket_routes
from engine.storage.connections import ConnectionStateConflict, ConnectionStore
from tests.conftest import moto_table

TABLE = "responses-connections"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectionStore]:
    with moto_table(monkeypatch, TABLE):
        yield ConnectionStore(TABLE, ttl_seconds=7200)


class Conflicts:
    """The next ``times`` TransactWriteItems calls are cancelled as DynamoDB cancels a conflicting transaction
    (moto never does: it runs one request at a time)."""

    def __init__(self, store: ConnectionStore, times: int) -> None:
        self.left, self.sent = times, 0
        store.client.meta.events.register(
            "before-call.dynamodb.TransactWriteItems",
            self._maybe_cancel,  # type: ignore[arg-type]  # a response returned here replaces the call
        )

    def _maybe_cancel(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        self.sent += 1
        if self.left <= 0:
            return None
        self.left -= 1
        reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
        error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
        parsed = {"Error": error, "CancellationReasons": reasons, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://dynamodb", 400, {}, None), parsed  # type: ignore[arg-type]


def _pending(store: ConnectionStore, connection_id: str) -> int:
    connection = store.connection(connection_id)
    assert connection is not None
    return connection.pending


def test_a_conflicting_transaction_is_tried_again(store: ConnectionStore, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(time, "sleep", lambda _: None)
    store.open("c1", "t", int(time.time()))
    connection = store.connection("c1")
    assert connection is not None
    conflicts = Conflicts(store, times=3)
    assert store.enqueue(connection, "0001#m1", '{"type":"response.create"}') is True
    assert conflicts.sent == 4 and _pending(store, "c1") == 1
    conflicts.left = 2
    assert store.dequeue("c1") == '{"type":"response.create"}'
    assert _pending(store, "c1") == 0 and store.dequeue("c1") is None


def test_a_refused_condition_means_the_connection_is_gone(store: ConnectionStore):
    store.open("c2", "t", int(time.time()))
    connection = store.connection("c2")
    assert connection is not None
    store.close("c2")
    assert store.enqueue(connection, "0001#m1", "{}") is False


def test_conflicts_that_do_not_end_are_an_error_not_a_lost_message(
    store: ConnectionStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(time, "sleep", lambda _: None)
    store.open("c3", "t", int(time.time()))
    connection = store.connection("c3")
    assert connection is not None
    Conflicts(store, times=100)
    with pytest.raises(ConnectionStateConflict):
        store.enqueue(connection, "0001#m1", "{}")


class Posted:
    """What the management API was asked to send (PostToConnection), by connection."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def post(self, connection_id: str, data: bytes) -> bool:
        self.messages.append((connection_id, data))
        return True

    def close(self, connection_id: str) -> None:
        pass


def test_a_message_that_cannot_be_queued_is_answered_and_frees_the_connection(
    store: ConnectionStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(time, "sleep", lambda _: None)
    posted = Posted()
    monkeypatch.setattr(websocket_routes, "_connections", lambda: store)
    monkeypatch.setattr(websocket_routes, "_channel", lambda: posted)
    store.open("c4", "t", int(time.time()))
    connection = store.connection("c4")
    assert connection is not None
    assert store.enqueue(connection, "0001#m0", '{"type":"response.create","model":"m","input":"first"}')
    # idle with a message waiting: the next one must queue behind it, and the queue keeps refusing
    Conflicts(store, times=100)
    body = '{"type":"response.create","model":"m","input":"second"}'
    websocket_routes.receive("c4", body, int(time.time() * 1000), "m1")
    ((to, data),) = posted.messages
    assert to == "c4" and b'"type":"error"' in data and b"Send it again" in data
    assert store.acquire("c4") is not None  # not left busy: the next message can start
