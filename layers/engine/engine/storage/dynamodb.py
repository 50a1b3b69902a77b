"""DynamoDB single-table store (aws.md §3).

Layout, all items of a response under ``pk = RESP#{id}`` and all carrying ``expires_at`` (TTL):
``META`` (the response without its output, status, tenant, chain ancestors, GSI keys for listing),
``IN#{n:06d}`` (one per input item) and ``OUT#{n:06d}`` (one per output item). Items are written first and
``META`` last, conditionally, so a response becomes visible whole. DynamoDB deletes expired items up to two
days late, so every read treats ``expires_at <= now`` as absent. Reads are strongly consistent so a chained
request right after ``response.completed`` finds its predecessor.
"""

from __future__ import annotations

import gzip
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import from_json, to_json

from engine.errors import InvalidRequestError, PayloadTooLargeError, PreviousResponseNotFoundError
from engine.models.response import Response
from engine.storage.base import Page, StoredContext

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["DynamoResponseStore", "DynamoTable"]

# DynamoDB's item limit is 400 KB including attribute names; keep headroom for the key and metadata.
_INLINE_LIMIT = 350_000
_BATCH = 25
_META = "META"


def _pk(response_id: str) -> dict[str, str]:
    return {"S": f"RESP#{response_id}"}


def _encode_item(item: dict[str, Any]) -> dict[str, Any]:
    raw = to_json(item)
    if len(raw) <= _INLINE_LIMIT:
        return {"item": {"S": raw.decode()}}
    packed = gzip.compress(raw, compresslevel=6)
    if len(packed) <= _INLINE_LIMIT:
        return {"item_gz": {"B": packed}}
    raise PayloadTooLargeError(
        f"An input item is too large to store ({len(raw)} bytes, {len(packed)} compressed; the limit is "
        f"{_INLINE_LIMIT}). Split it, or send it with store=false.",
        param="input",
        code="item_too_large",
    )


def _decode_item(attrs: dict[str, Any]) -> dict[str, Any]:
    if "item" in attrs:
        return dict(from_json(attrs["item"]["S"]))
    return dict(from_json(gzip.decompress(attrs["item_gz"]["B"])))


class DynamoTable:
    """What every repository on the table shares: the lazily made client, paged queries, batch writes."""

    def __init__(self, table_name: str, retention_days: int) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400

    @cached_property
    def _ddb(self) -> DynamoDBClient:
        import boto3  # on first use: boto3 costs ~300 ms of cold start on a handler that may not need it
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=2,
            read_timeout=10,
            tcp_keepalive=True,
            max_pool_connections=64,
        )
        return boto3.client("dynamodb", config=config)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), _BATCH):
            pending: dict[str, Any] = {self.table_name: requests[start : start + _BATCH]}
            for attempt in range(8):
                result = self._ddb.batch_write_item(RequestItems=pending)
                pending = dict(result.get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("DynamoDB kept throttling batch writes")

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            result = self._ddb.query(TableName=self.table_name, ConsistentRead=True, **kwargs)
            rows.extend(result.get("Items", []))
            if "LastEvaluatedKey" not in result:
                return rows
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]


class DynamoResponseStore(DynamoTable):
    """``ResponseStore`` on one DynamoDB table (pk/sk, GSI ``gsi1`` for newest-first listing per tenant)."""

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=16, thread_name_prefix="ddb")

    # --- writes ------------------------------------------------------------------------------------------------

    def check_items(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            _encode_item(item)

    def put(self, tenant: str, response: Response, input_items: list[dict[str, Any]], ancestors: list[str]) -> None:
        expires = {"N": str(response.created_at + self.retention_seconds)}
        pk = _pk(response.id)
        rows: list[dict[str, Any]] = []
        for prefix, items in (("IN", input_items), ("OUT", [i.model_dump() for i in response.output])):
            for n, item in enumerate(items):
                row = {"pk": pk, "sk": {"S": f"{prefix}#{n:06d}"}, "item_id": {"S": str(item.get("id", ""))}}
                if item.get("id"):
                    row["gsi2pk"] = {"S": f"{tenant}#{item['id']}"}
                row.update(_encode_item(item))
                row["expires_at"] = expires
                rows.append(row)
        meta: dict[str, Any] = {
            "pk": pk,
            "sk": {"S": _META},
            "tenant": {"S": tenant},
            "status": {"S": response.status},
            "created_at": {"N": str(response.created_at)},
            "expires_at": expires,
            "response": {"S": response.model_dump_json(exclude={"output"})},
            "gsi1pk": {"S": f"TENANT#{tenant}"},
            "gsi1sk": {"S": response.id},
            "n_in": {"N": str(len(input_items))},
            "n_out": {"N": str(len(response.output))},
        }
        if ancestors:
            meta["ancestors"] = {"L": [{"S": a} for a in ancestors]}
        # One BatchWriteItem for a typical response (25 items a call), the record last. Batches are not atomic,
        # so the record counts its items and readers treat a response whose items are not all there yet as
        # absent (see _complete). A TransactWriteItems would be atomic but costs twice the write capacity, and
        # a second call (items, then a conditional record) costs a round trip and ~1 ms of client CPU.
        self._batch_write([{"PutRequest": {"Item": row}} for row in [*rows, meta]])

    # --- reads -------------------------------------------------------------------------------------------------

    def _live_meta(self, tenant: str, meta: dict[str, Any] | None) -> bool:
        return (
            meta is not None
            and meta.get("tenant", {}).get("S") == tenant
            and int(meta["expires_at"]["N"]) > int(time.time())
        )

    @staticmethod
    def _complete(meta: dict[str, Any], rows: list[dict[str, Any]], prefix: str) -> bool:
        """All ``prefix`` items the record counts are present (a write in flight is not visible yet)."""
        expected = int(meta.get(f"n_{prefix.lower()}", {}).get("N", "0"))
        return sum(1 for r in rows if r["sk"]["S"].startswith(f"{prefix}#")) >= expected

    def _response_from(self, meta: dict[str, Any], outputs: list[dict[str, Any]]) -> Response:
        """The response as committed: the record's status, and exactly the output items it counts (a background
        worker cut off by a cancel may have written more, which were never committed)."""
        data = dict(from_json(meta["response"]["S"]))
        data["status"] = meta["status"]["S"]
        n_out = int(meta.get("n_out", {}).get("N", len(outputs)))
        data["output"] = [_decode_item(row) for row in outputs[:n_out]]
        return Response.model_validate(data)

    def get(self, tenant: str, response_id: str) -> Response | None:
        rows = self._query_all(
            KeyConditionExpression="pk = :pk AND sk >= :meta",
            ExpressionAttributeValues={":pk": _pk(response_id), ":meta": {"S": _META}},
        )
        if not rows or rows[0]["sk"]["S"] != _META or not self._live_meta(tenant, rows[0]):
            return None
        if not self._complete(rows[0], rows, "OUT"):
            return None
        return self._response_from(rows[0], [r for r in rows[1:] if r["sk"]["S"].startswith("OUT#")])

    def _partition(self, response_id: str) -> list[dict[str, Any]]:
        """IN#…, META, OUT#… of one response, in that order."""
        return self._query_all(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": _pk(response_id), ":lo": {"S": "IN#"}, ":hi": {"S": "OUT#~"}},
        )

    @classmethod
    def _turn_items(cls, rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        meta = next((r for r in rows if r["sk"]["S"] == _META), None)
        if meta is not None and not (cls._complete(meta, rows, "IN") and cls._complete(meta, rows, "OUT")):
            meta = None
        items = [_decode_item(r) for r in rows if r["sk"]["S"] != _META]
        return meta, items

    def load_context(self, tenant: str, response_id: str) -> StoredContext | None:
        meta, items = self._turn_items(self._partition(response_id))
        if not self._live_meta(tenant, meta):
            return None
        assert meta is not None
        ancestors = [a["S"] for a in meta.get("ancestors", {}).get("L", [])]
        earlier: list[dict[str, Any]] = []
        for ancestor_id, (ancestor_meta, ancestor_items) in zip(
            ancestors,
            self._pool.map(lambda rid: self._turn_items(self._partition(rid)), ancestors),
            strict=True,
        ):
            if not self._live_meta(tenant, ancestor_meta):
                # A response earlier in the chain expired or was deleted: the context is gone with it.
                raise PreviousResponseNotFoundError(ancestor_id)
            earlier.extend(ancestor_items)
        return StoredContext(items=earlier + items, ancestors=[*ancestors, response_id])

    def _meta(self, response_id: str) -> dict[str, Any] | None:
        result = self._ddb.get_item(
            TableName=self.table_name,
            Key={"pk": _pk(response_id), "sk": {"S": _META}},
            ConsistentRead=True,
            ProjectionExpression="tenant, expires_at",
        )
        return result.get("Item")

    def list_input_items(
        self, tenant: str, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None:
        if not self._live_meta(tenant, self._meta(response_id)):
            return None
        low, high = {"S": "IN#"}, {"S": "IN#~"}
        if after is not None:
            index = self._query_all(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":pk": _pk(response_id), ":lo": low, ":hi": high},
                ProjectionExpression="sk, item_id",
            )
            cursor = next((r["sk"] for r in index if r.get("item_id", {}).get("S") == after), None)
            if cursor is None:
                raise InvalidRequestError(f"No input item with id '{after}' in this response.", param="after")
            low, high = (cursor, high) if order == "asc" else (low, cursor)
        result = self._ddb.query(
            TableName=self.table_name,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": _pk(response_id), ":lo": low, ":hi": high},
            ScanIndexForward=order == "asc",
            # One extra row tells has_more; one more covers the cursor row itself, which BETWEEN includes.
            Limit=limit + 2,
        )
        rows = [r for r in result.get("Items", []) if after is None or r.get("item_id", {}).get("S") != after]
        return Page([_decode_item(r) for r in rows[:limit]], len(rows) > limit)

    def list_responses(self, tenant: str, *, limit: int, after: str | None, before: str | None) -> Page[Response]:
        key = "gsi1pk = :t"
        values: dict[str, Any] = {":t": {"S": f"TENANT#{tenant}"}, ":now": {"N": str(int(time.time()))}}
        if after is not None:
            key += " AND gsi1sk < :c"
            values[":c"] = {"S": after}
        elif before is not None:
            key += " AND gsi1sk > :c"
            values[":c"] = {"S": before}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": key,
            "FilterExpression": "expires_at > :now",
            "ExpressionAttributeValues": values,
            # `before` pages towards newer responses: read upwards from the cursor, then reverse.
            "ScanIndexForward": before is not None and after is None,
            "Limit": limit + 1,
        }
        metas: list[dict[str, Any]] = []
        while len(metas) <= limit:
            result = self._ddb.query(**kwargs)
            metas.extend(result.get("Items", []))
            if "LastEvaluatedKey" not in result:
                break
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]
        has_more = len(metas) > limit
        metas = metas[:limit]
        if kwargs["ScanIndexForward"]:
            metas.reverse()
        outputs = self._pool.map(
            lambda m: self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :out)",
                ExpressionAttributeValues={":pk": m["pk"], ":out": {"S": "OUT#"}},
            ),
            metas,
        )
        responses = [
            self._response_from(m, out) for m, out in zip(metas, outputs, strict=True) if self._complete(m, out, "OUT")
        ]
        return Page(responses, has_more)

    # --- background runs ---------------------------------------------------------------------------------------
    # A background response's record is its commit point: the worker writes output items and stream events
    # first, then advances ``n_out``/``next_seq`` with an update conditional on ``in_progress``. Readers see only
    # what the record counts, so a worker cut off by a cancel leaves nothing visible behind.

    def _rows(
        self, tenant: str, response_id: str, prefix: str, items: list[dict[str, Any]], start: int
    ) -> list[dict[str, Any]]:
        return [
            {
                "pk": _pk(response_id),
                "sk": {"S": f"{prefix}#{start + n:06d}"},
                "item_id": {"S": str(item.get("id", ""))},
                "gsi2pk": {"S": f"{tenant}#{item.get('id', '')}"},
                **_encode_item(item),
            }
            for n, item in enumerate(items)
        ]

    def _event_rows(self, response_id: str, events: list[tuple[int, str]]) -> list[dict[str, Any]]:
        return [{"pk": _pk(response_id), "sk": {"S": f"EVT#{seq:08d}"}, "event": {"S": data}} for seq, data in events]

    def create_background(
        self,
        tenant: str,
        response: Response,
        input_items: list[dict[str, Any]],
        ancestors: list[str],
        job: dict[str, Any],
        events: list[tuple[int, str]],
    ) -> None:
        """The queued response, its input, its first stream events and the job the worker will run."""
        expires = {"N": str(response.created_at + self.retention_seconds)}
        rows = self._rows(tenant, response.id, "IN", input_items, 0) + self._event_rows(response.id, events)
        rows.append({"pk": _pk(response.id), "sk": {"S": "JOB"}, "job": {"S": to_json(job).decode()}})
        for row in rows:
            row["expires_at"] = expires
        self._batch_write([{"PutRequest": {"Item": row}} for row in rows])
        meta: dict[str, Any] = {
            "pk": _pk(response.id),
            "sk": {"S": _META},
            "tenant": {"S": tenant},
            "status": {"S": response.status},
            "background": {"BOOL": True},
            "created_at": {"N": str(response.created_at)},
            "expires_at": expires,
            "response": {"S": response.model_dump_json(exclude={"output"})},
            "gsi1pk": {"S": f"TENANT#{tenant}"},
            "gsi1sk": {"S": response.id},
            "n_in": {"N": str(len(input_items))},
            "n_out": {"N": "0"},
            "next_seq": {"N": str(len(events))},
        }
        if ancestors:
            meta["ancestors"] = {"L": [{"S": a} for a in ancestors]}
        self._ddb.put_item(TableName=self.table_name, Item=meta, ConditionExpression="attribute_not_exists(pk)")

    def job(self, response_id: str) -> dict[str, Any] | None:
        result = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": _pk(response_id), "sk": {"S": "JOB"}}, ConsistentRead=True
        )
        item = result.get("Item")
        return dict(from_json(item["job"]["S"])) if item else None

    def progress(self, response_id: str) -> tuple[str, int, int] | None:
        """(status, committed output items, committed events) of a response, read strongly consistently."""
        result = self._ddb.get_item(
            TableName=self.table_name,
            Key={"pk": _pk(response_id), "sk": {"S": _META}},
            ConsistentRead=True,
            ProjectionExpression="#s, n_out, next_seq, expires_at",
            ExpressionAttributeNames={"#s": "status"},
        )
        meta = result.get("Item")
        if meta is None or int(meta["expires_at"]["N"]) <= int(time.time()):
            return None
        return (
            meta["status"]["S"],
            int(meta.get("n_out", {}).get("N", "0")),
            int(meta.get("next_seq", {}).get("N", "0")),
        )

    def start_background(self, response_id: str) -> bool:
        """queued → in_progress; False if the response is no longer queued (cancelled, or already started)."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": _pk(response_id), "sk": {"S": _META}},
                UpdateExpression="SET #s = :ip",
                ConditionExpression="#s = :q",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":ip": {"S": "in_progress"}, ":q": {"S": "queued"}},
            )
            return True
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False

    def commit_progress(
        self,
        response: Response,
        *,
        n_out: int,
        new_output: list[dict[str, Any]],
        events: list[tuple[int, str]],
        next_seq: int,
        job: dict[str, Any] | None,
    ) -> bool:
        """Write output items and events, then advance the record (and its status, when ``response`` has reached
        a terminal one) only if it is still ``in_progress``. ``job=None`` removes the job (it holds the request's
        MCP credentials), which a terminal commit does. False: the response was cancelled meanwhile."""
        expires = {"N": str(response.created_at + self.retention_seconds)}
        tenant = str(job["tenant"]) if job else self._tenant_of(response.id)
        rows = self._rows(tenant, response.id, "OUT", new_output, n_out - len(new_output))
        rows += self._event_rows(response.id, events)
        for row in rows:
            row["expires_at"] = expires
        self._batch_write([{"PutRequest": {"Item": row}} for row in rows])
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": _pk(response.id), "sk": {"S": _META}},
                UpdateExpression="SET #s = :to, n_out = :n, next_seq = :seq, #r = :resp",
                ConditionExpression="#s = :ip",
                ExpressionAttributeNames={"#s": "status", "#r": "response"},
                ExpressionAttributeValues={
                    ":to": {"S": response.status},
                    ":n": {"N": str(n_out)},
                    ":seq": {"N": str(next_seq)},
                    ":resp": {"S": response.model_dump_json(exclude={"output"})},
                    ":ip": {"S": "in_progress"},
                },
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            # cancelled or deleted meanwhile: take back what this commit wrote (it was never counted)
            self._batch_write([{"DeleteRequest": {"Key": {"pk": r["pk"], "sk": r["sk"]}}} for r in rows])
            return False
        key = {"pk": _pk(response.id), "sk": {"S": "JOB"}}
        if job is None:
            self._ddb.delete_item(TableName=self.table_name, Key=key)
        else:
            item = {**key, "job": {"S": to_json(job).decode()}, "expires_at": expires}
            self._ddb.put_item(TableName=self.table_name, Item=item)
        return True

    def _tenant_of(self, response_id: str) -> str:
        result = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": _pk(response_id), "sk": {"S": _META}}, ProjectionExpression="tenant"
        )
        return str(result.get("Item", {}).get("tenant", {}).get("S", ""))

    def find_item(self, tenant: str, item_id: str) -> dict[str, Any] | None:
        """A stored input or output item of the tenant's, by its id (GSI ``gsi2``), if its response is live."""
        result = self._ddb.query(
            TableName=self.table_name,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :k",
            ExpressionAttributeValues={":k": {"S": f"{tenant}#{item_id}"}},
            Limit=1,
        )
        for key in result.get("Items", []):
            row = self._ddb.get_item(
                TableName=self.table_name, Key={"pk": key["pk"], "sk": key["sk"]}, ConsistentRead=True
            ).get("Item")
            if row is not None and int(row.get("expires_at", {}).get("N", "0")) > int(time.time()):
                return _decode_item(row)
        return None

    def events(self, response_id: str, after: int, before: int) -> list[tuple[int, str]]:
        """Committed stream events with ``after < sequence_number < before``."""
        if before <= after + 1:
            return []
        rows = self._query_all(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": _pk(response_id),
                ":lo": {"S": f"EVT#{after + 1:08d}"},
                ":hi": {"S": f"EVT#{before - 1:08d}"},
            },
        )
        return [(int(r["sk"]["S"][4:]), r["event"]["S"]) for r in rows]

    def cancel(self, tenant: str, response_id: str) -> Literal["cancelled", "not_background", "finished", "missing"]:
        """queued|in_progress → cancelled, for background responses; what happened otherwise."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": _pk(response_id), "sk": {"S": _META}},
                UpdateExpression="SET #s = :c",
                ConditionExpression="tenant = :t AND background = :yes AND #s IN (:q, :ip) AND expires_at > :now",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":c": {"S": "cancelled"},
                    ":t": {"S": tenant},
                    ":yes": {"BOOL": True},
                    ":q": {"S": "queued"},
                    ":ip": {"S": "in_progress"},
                    ":now": {"N": str(int(time.time()))},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            self._ddb.delete_item(TableName=self.table_name, Key={"pk": _pk(response_id), "sk": {"S": "JOB"}})
            return "cancelled"
        except self._ddb.exceptions.ConditionalCheckFailedException as exc:
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if not self._live_meta(tenant, old):
                return "missing"
            assert old is not None
            return "not_background" if not old.get("background", {}).get("BOOL") else "finished"

    # --- delete ------------------------------------------------------------------------------------------------

    def delete(self, tenant: str, response_id: str) -> bool:
        if not self._live_meta(tenant, self._meta(response_id)):
            return False
        # META first: the response disappears at once, then its items follow.
        self._ddb.delete_item(
            TableName=self.table_name,
            Key={"pk": _pk(response_id), "sk": {"S": _META}},
            ConditionExpression="tenant = :t",
            ExpressionAttributeValues={":t": {"S": tenant}},
        )
        keys = self._query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _pk(response_id)},
            ProjectionExpression="pk, sk",
        )
        self._batch_write([{"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}} for k in keys])
        return True
