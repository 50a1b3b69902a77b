"""WebSocket mode's AWS calls: connection-local state in the table, the API Gateway management API
(PostToConnection, DeleteConnection) and the asynchronous invoke of the worker.

Connection-local state lives in the responses table under ``pk = CONN#{connection id}``, every row with
``expires_at`` = connect time + ``WEBSOCKET_STATE_TTL_SECONDS`` (2 hours: the longest API Gateway keeps a WebSocket
open), and is deleted on ``$disconnect``:

- ``META``: tenant, connect time, ``busy`` while a response runs, ``pending`` (queued messages, counted in the
  transaction that queues or takes one), and the cached response: its id (``cached_id``),
  its chain of ids (``cached_chain``) and how many ``ITEM`` rows hold its context (``cached_count``).
- ``ITEM#{n:06d}``: the cached response's context, oldest first: its chain's items, its input, its output.
  A continuation of the cached response appends its own input and output; any other response starts again at 0
  (rows past ``cached_count`` are stale and never read).
- ``Q#{received ms:013d}#{message id}``: ``response.create`` messages waiting for the response in flight.

Connections of the management API are made lazily (boto3 costs ~300 ms of cold start).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic_core import to_json

from engine.storage import clients
from engine.storage.codec import encode_row, encode_values
from engine.storage.items import ItemCodec
from engine.storage.table import ConditionFailed, DynamoTable, Row

__all__ = [
    "Connection",
    "ConnectionChannel",
    "ConnectionStateConflict",
    "ConnectionStore",
    "WorkerInvoker",
    "connection_from",
]

_META = "META"
_TRANSACTION_LIMIT = 100  # DynamoDB's items per TransactWriteItems
_CONFLICT_ATTEMPTS = 8
# cancellation reasons that say nothing about the connection, only about that moment
_RETRYABLE_CANCELS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class ConnectionStateConflict(Exception):
    """The connection's state could not be written: DynamoDB kept cancelling the transaction (conflicts)."""


def _pk(connection_id: str) -> str:
    return f"CONN#{connection_id}"


@dataclass(slots=True)
class Connection:
    """One open WebSocket connection as the table knows it."""

    connection_id: str
    tenant: str
    connected_at: int
    expires_at: int
    cached_id: str | None = None
    # the cached response's chain, oldest first, ending with cached_id (what a continuation records as ancestors)
    cached_chain: tuple[str, ...] = ()
    cached_count: int = 0
    # while busy: when a worker that died without releasing the connection is presumed gone
    busy_until: int = 0
    # messages in the queue (Q# rows), kept with them in one transaction
    pending: int = 0


def connection_from(row: Row) -> Connection:
    return Connection(
        connection_id=str(row["pk"]).removeprefix("CONN#"),
        tenant=row["tenant"],
        connected_at=int(row["connected_at"]),
        expires_at=int(row["expires_at"]),
        cached_id=row.get("cached_id"),
        cached_chain=tuple(row.get("cached_chain") or ()),
        cached_count=int(row.get("cached_count") or 0),
        busy_until=int(row.get("busy_until") or 0),
        pending=int(row.get("pending") or 0),
    )


class ConnectionStore(DynamoTable):
    """The ``CONN#`` partitions of the table (see the module docstring)."""

    def __init__(self, table_name: str, ttl_seconds: int, busy_seconds: int = 900) -> None:
        super().__init__(table_name)
        self.ttl_seconds = ttl_seconds
        # The worker's timeout: a connection whose worker was cut off (timeout, crash) is taken over after it.
        self.busy_seconds = busy_seconds

    @cached_property
    def _items(self) -> ItemCodec:
        """Context items, the large ones in the bucket (the lifecycle rule removes them after the retention)."""
        from engine.settings import get_settings

        return ItemCodec(get_settings().files_bucket)

    def _key(self, connection_id: str, sk: str = _META) -> Row:
        return {"pk": _pk(connection_id), "sk": sk}

    def open(self, connection_id: str, tenant: str, connected_at: int) -> None:
        self.put(
            {
                **self._key(connection_id),
                "tenant": tenant,
                "connected_at": connected_at,
                "expires_at": connected_at + self.ttl_seconds,
                "busy": False,
            }
        )

    def connection(self, connection_id: str) -> Connection | None:
        """The connection, or None when it is gone (disconnected, or its state expired)."""
        row = self.get(self._key(connection_id))
        if row is None or int(row["expires_at"]) <= int(time.time()):
            return None
        return connection_from(row)

    def close(self, connection_id: str) -> None:
        """Delete every row of the connection ($disconnect). The record goes first: every later write of a worker
        still running is conditional on it, so none can leave rows behind the query below."""
        self.delete(self._key(connection_id))
        rows = self.query("pk = :pk", {":pk": _pk(connection_id)}, projection="pk, sk")
        self.batch_write(deletes=[{"pk": r["pk"], "sk": r["sk"]} for r in rows])

    # --- one response at a time ----------------------------------------------------------------------------------

    def acquire(self, connection_id: str) -> Connection | None:
        """Mark the connection busy if it was idle (or its worker is presumed gone); the connection when this call
        got it, else None."""
        now = int(time.time())
        try:
            row = self.update(
                self._key(connection_id),
                "SET busy = :t, busy_until = :until",
                condition="expires_at > :now AND (busy = :f OR busy_until < :now)",
                values={":t": True, ":f": False, ":until": now + self.busy_seconds, ":now": now},
                returns="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return connection_from(row) if row else None

    def release(self, connection_id: str) -> None:
        try:
            self.update(
                self._key(connection_id), "SET busy = :f", condition="attribute_exists(pk)", values={":f": False}
            )
        except ConditionFailed:
            pass  # disconnected meanwhile: nothing left to release

    def _transact(self, *writes: dict[str, Any]) -> bool:
        """One TransactWriteItems; False when a condition refused it (the connection is gone). A transaction
        cancelled only because another one was writing the same record at that moment (``TransactionConflict``:
        a message queued while the worker takes one, both counting ``pending``) is tried again, with back-off;
        DynamoDB does not retry those itself."""
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[dict(w) for w in writes])  # type: ignore[misc]
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = {str(r.get("Code")) for r in exc.response.get("CancellationReasons") or []}
                if "ConditionalCheckFailed" in codes or not codes & _RETRYABLE_CANCELS:
                    return False
                time.sleep(min(0.02 * 2**attempt, 0.5) * (0.5 + random.random()))
        raise ConnectionStateConflict("DynamoDB kept cancelling a transaction on this connection's state")

    def enqueue(self, connection: Connection, key: str, body: str) -> bool:
        """Queue a message, and count it on the record in the same transaction (see ``pending``); False when the
        connection is gone."""
        row = {**self._key(connection.connection_id, f"Q#{key}"), "body": body, "expires_at": connection.expires_at}
        return self._transact(
            {"Put": {"TableName": self.table_name, "Item": encode_row(row)}},
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": encode_row(self._key(connection.connection_id)),
                    "UpdateExpression": "ADD pending :one",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": encode_values({":one": 1}),
                }
            },
        )

    def _oldest_queued(self, connection_id: str, **options: Any) -> list[Row]:
        rows, _ = self.query_page(
            "pk = :pk AND begins_with(sk, :q)", {":pk": _pk(connection_id), ":q": "Q#"}, limit=1, **options
        )
        return rows

    def has_queued(self, connection_id: str) -> bool:
        return bool(self._oldest_queued(connection_id, projection="pk"))

    def dequeue(self, connection_id: str) -> str | None:
        """Take the oldest waiting message off the queue (None when there is none)."""
        rows = self._oldest_queued(connection_id)
        if not rows:
            return None
        taken = self._transact(
            {"Delete": {"TableName": self.table_name, "Key": encode_row({"pk": rows[0]["pk"], "sk": rows[0]["sk"]})}},
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": encode_row(self._key(connection_id)),
                    "UpdateExpression": "ADD pending :minus",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": encode_values({":minus": -1}),
                }
            },
        )
        return str(rows[0]["body"]) if taken else None

    # --- the cached response -------------------------------------------------------------------------------------

    def cached_items(self, connection_id: str, count: int) -> list[dict[str, Any]]:
        if count == 0:
            return []
        rows = self.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(connection_id), ":lo": "ITEM#", ":hi": f"ITEM#{count - 1:06d}"},
        )
        return self._items.decode_all(rows)

    def cache(
        self, connection: Connection, response_id: str, chain: list[str], start: int, items: list[dict[str, Any]]
    ) -> None:
        """Make ``response_id`` the cached response: its context is the rows before ``start`` (kept) plus ``items``.
        The rows and the record's update go in one transaction when they fit (a turn's few items), else the rows
        in batches first (the record names only rows that exist)."""
        key = connection.connection_id
        rows = [
            {
                **self._key(key, f"ITEM#{n:06d}"),
                **self._items.attrs(item, f"connections/{key}/{n:06d}"),
                "expires_at": connection.expires_at,
            }
            for n, item in enumerate(items, start)
        ]
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": encode_row(self._key(key)),
            "UpdateExpression": "SET cached_id = :id, cached_chain = :chain, cached_count = :n",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": encode_values(
                {":id": response_id, ":chain": list(chain), ":n": start + len(items)}
            ),
        }
        if len(rows) < _TRANSACTION_LIMIT:
            puts = [{"Put": {"TableName": self.table_name, "Item": encode_row(row)}} for row in rows]
            self._transact(*puts, {"Update": update})  # refused when disconnected meanwhile: nothing is left
            return
        try:  # (too many rows for one transaction: any written after a disconnect expire with their TTL)
            self.batch_write(puts=rows)
            self.client.update_item(**update)
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

    def evict(self, connection_id: str, response_id: str) -> None:
        """Forget the cached response if it is ``response_id`` (a failed continuation of it)."""
        try:
            self.update(
                self._key(connection_id),
                "REMOVE cached_id, cached_chain SET cached_count = :zero",
                condition="cached_id = :id",
                values={":id": response_id, ":zero": 0},
            )
        except ConditionFailed:
            pass


class ConnectionChannel:
    """The WebSocket API's management API: messages to a connection, and closing it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    @cached_property
    def _client(self) -> Any:
        return clients.apigateway_management(self.endpoint)

    def post(self, connection_id: str, data: bytes) -> bool:
        """PostToConnection; False when the connection is gone (the client left)."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except self._client.exceptions.GoneException:
            return False
        return True

    def close(self, connection_id: str) -> None:
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except self._client.exceptions.GoneException:
            pass


class WorkerInvoker:
    """Hands a connection's queue to the worker function: an asynchronous (``Event``) Lambda invoke."""

    def __init__(self, function_name: str, endpoint_url: str = "") -> None:
        self.function_name = function_name
        self.endpoint_url = endpoint_url

    @cached_property
    def _client(self) -> Any:
        return clients.lambda_(self.endpoint_url)

    def invoke(self, payload: dict[str, Any]) -> None:
        self._client.invoke(FunctionName=self.function_name, InvocationType="Event", Payload=to_json(payload))
