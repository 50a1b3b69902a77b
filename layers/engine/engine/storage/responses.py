"""Stored responses on the DynamoDB table (aws.md §3).

Layout, all rows of a response under ``pk = RESP#{id}`` and all carrying ``expires_at`` (TTL):
``META`` (the response without its output, status, tenant, chain ancestors, GSI keys for listing),
``IN#{n:06d}`` (one per input item) and ``OUT#{n:06d}`` (one per output item). Items are written first and
``META`` last, so a response becomes visible whole. DynamoDB deletes expired items up to two days late, so every
read treats ``expires_at <= now`` as absent. Reads are strongly consistent so a chained request right after
``response.completed`` finds its predecessor.

A background response created with ``store: false`` is kept only ``UNSTORED_SECONDS`` (10 minutes, as on
OpenAI) so it can be polled: its record says ``unstored``, it cannot be chained from, and its items are not
indexed for ``item_reference``.
"""

from __future__ import annotations

import gzip
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, Literal

from pydantic_core import from_json, to_json

from engine.errors import InvalidRequestError, PayloadTooLargeError, PreviousResponseNotFoundError
from engine.models.response import Response
from engine.storage.base import Page, StoredContext
from engine.storage.table import ConditionFailed, DynamoTable, Row

__all__ = ["UNSTORED_SECONDS", "DynamoResponseStore", "decode_item", "encode_item"]

UNSTORED_SECONDS = 600

# DynamoDB's item limit is 400 KB including attribute names; keep headroom for the key and metadata.
_INLINE_LIMIT = 350_000
_META = "META"


def _pk(response_id: str) -> str:
    return f"RESP#{response_id}"


def encode_item(item: dict[str, Any]) -> Row:
    """The attributes that hold one item: its JSON, gzipped when that is what makes it fit."""
    raw = to_json(item)
    if len(raw) <= _INLINE_LIMIT:
        return {"item": raw.decode()}
    packed = gzip.compress(raw, compresslevel=6)
    if len(packed) <= _INLINE_LIMIT:
        return {"item_gz": packed}
    raise PayloadTooLargeError(
        f"An input item is too large to store ({len(raw)} bytes, {len(packed)} compressed; the limit is "
        f"{_INLINE_LIMIT}). Split it, or send it with store=false.",
        param="input",
        code="item_too_large",
    )


def decode_item(row: Row) -> dict[str, Any]:
    if "item" in row:
        return dict(from_json(row["item"]))
    return dict(from_json(gzip.decompress(row["item_gz"])))


def _machine_error(meta: Row) -> dict[str, str]:
    """The error of a run the state machine marked failed (the worker could not): its ``Error`` name, and the
    worker's own message when it was ``StepRetryable`` (ours, so it is safe to show)."""
    name = str(meta.get("error_name") or "")
    message = f"The background run failed ({name or 'worker error'}) and was stopped by the state machine."
    if name == "StepRetryable":
        try:
            cause = from_json(str(meta.get("error_cause") or "{}"))
            message = f"The background run failed after its retries: {cause['errorMessage']}"
        except (ValueError, KeyError, TypeError):
            pass
    return {"code": str(meta.get("error_code") or "server_error"), "message": message, "type": "server_error"}


def _now() -> int:
    return int(time.time())


class DynamoResponseStore:
    """``ResponseStore`` on one DynamoDB table (pk/sk, GSI ``gsi1`` for newest-first listing per tenant)."""

    def __init__(self, table_name: str, retention_days: int) -> None:
        self.table = DynamoTable(table_name, retention_days)
        self.retention_seconds = self.table.retention_seconds

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=16, thread_name_prefix="ddb")

    # --- writes ------------------------------------------------------------------------------------------------

    def _expires(self, response: Response) -> int:
        return response.created_at + (self.retention_seconds if response.store else UNSTORED_SECONDS)

    def check_items(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            encode_item(item)

    def _meta_row(self, tenant: str, response: Response, n_in: int, ancestors: list[str]) -> Row:
        return {
            "pk": _pk(response.id),
            "sk": _META,
            "tenant": tenant,
            "status": response.status,
            "created_at": response.created_at,
            "expires_at": self._expires(response),
            "unstored": None if response.store else True,
            "response": response.model_dump_json(exclude={"output"}),
            "gsi1pk": f"TENANT#{tenant}",
            "gsi1sk": response.id,
            "n_in": n_in,
            "n_out": len(response.output),
            "ancestors": ancestors or None,
        }

    def put(self, tenant: str, response: Response, input_items: list[dict[str, Any]], ancestors: list[str]) -> None:
        expires = self._expires(response)
        rows = self._rows(tenant, response.id, "IN", input_items, 0)
        rows += self._rows(tenant, response.id, "OUT", [i.model_dump() for i in response.output], 0)
        for row in rows:
            row["expires_at"] = expires
        # One BatchWriteItem for a typical response (25 items a call), the record last. Batches are not atomic,
        # so the record counts its items and readers treat a response whose items are not all there yet as
        # absent (see _complete). A TransactWriteItems would be atomic but costs twice the write capacity, and
        # a second call (items, then a conditional record) costs a round trip and ~1 ms of client CPU.
        self.table.batch_write([*rows, self._meta_row(tenant, response, len(input_items), ancestors)])

    # --- reads -------------------------------------------------------------------------------------------------

    @staticmethod
    def _live_meta(tenant: str, meta: Row | None) -> bool:
        return meta is not None and meta.get("tenant") == tenant and int(meta["expires_at"]) > _now()

    @staticmethod
    def _complete(meta: Row, rows: list[Row], prefix: str) -> bool:
        """All ``prefix`` items the record counts are present (a write in flight is not visible yet)."""
        expected = int(meta.get(f"n_{prefix.lower()}", 0))
        return sum(1 for r in rows if str(r["sk"]).startswith(f"{prefix}#")) >= expected

    @staticmethod
    def _response_from(meta: Row, outputs: list[Row]) -> Response:
        """The response as committed: the record's status, and exactly the output items it counts (a background
        worker cut off by a cancel may have written more, which were never committed)."""
        data = dict(from_json(meta["response"]))
        data["status"] = meta["status"]
        if data["status"] == "failed" and not data.get("error"):
            data["error"] = _machine_error(meta)
        n_out = int(meta.get("n_out", len(outputs)))
        data["output"] = [decode_item(row) for row in outputs[:n_out]]
        return Response.model_validate(data)

    def get(self, tenant: str, response_id: str) -> Response | None:
        rows = self.table.query("pk = :pk AND sk >= :meta", {":pk": _pk(response_id), ":meta": _META})
        if not rows or rows[0]["sk"] != _META or not self._live_meta(tenant, rows[0]):
            return None
        if not self._complete(rows[0], rows, "OUT"):
            return None
        return self._response_from(rows[0], [r for r in rows[1:] if str(r["sk"]).startswith("OUT#")])

    def _partition(self, response_id: str) -> list[Row]:
        """IN#…, META, OUT#… of one response, in that order."""
        return self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi", {":pk": _pk(response_id), ":lo": "IN#", ":hi": "OUT#~"}
        )

    @classmethod
    def _turn_items(cls, rows: list[Row]) -> tuple[Row | None, list[dict[str, Any]]]:
        meta = next((r for r in rows if r["sk"] == _META), None)
        if meta is not None and not (cls._complete(meta, rows, "IN") and cls._complete(meta, rows, "OUT")):
            meta = None
        # IN#/OUT# only: a background response still running also has its JOB row in this range
        items = [decode_item(r) for r in rows if str(r["sk"]).startswith(("IN#", "OUT#"))]
        return meta, items

    def load_context(self, tenant: str, response_id: str) -> StoredContext | None:
        meta, items = self._turn_items(self._partition(response_id))
        if not self._live_meta(tenant, meta) or (meta or {}).get("unstored"):
            return None
        assert meta is not None
        ancestors = [str(a) for a in meta.get("ancestors", [])]
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

    def _meta(self, response_id: str) -> Row | None:
        return self.table.get({"pk": _pk(response_id), "sk": _META}, projection="tenant, expires_at")

    def list_input_items(
        self, tenant: str, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None:
        if not self._live_meta(tenant, self._meta(response_id)):
            return None
        low, high = "IN#", "IN#~"
        if after is not None:
            index = self.table.query(
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                {":pk": _pk(response_id), ":lo": low, ":hi": high},
                projection="sk, item_id",
            )
            cursor = next((r["sk"] for r in index if r.get("item_id") == after), None)
            if cursor is None:
                raise InvalidRequestError(f"No input item with id '{after}' in this response.", param="after")
            low, high = (cursor, high) if order == "asc" else (low, cursor)
        rows, _ = self.table.query_page(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(response_id), ":lo": low, ":hi": high},
            forward=order == "asc",
            # One extra row tells has_more; one more covers the cursor row itself, which BETWEEN includes.
            limit=limit + 2,
        )
        rows = [r for r in rows if after is None or r.get("item_id") != after]
        return Page([decode_item(r) for r in rows[:limit]], len(rows) > limit)

    def list_responses(self, tenant: str, *, limit: int, after: str | None, before: str | None) -> Page[Response]:
        key = "gsi1pk = :t"
        values: Row = {":t": f"TENANT#{tenant}", ":now": _now()}
        if after is not None:
            key += " AND gsi1sk < :c"
            values[":c"] = after
        elif before is not None:
            key += " AND gsi1sk > :c"
            values[":c"] = before
        # `before` pages towards newer responses: read upwards from the cursor, then reverse.
        forward = before is not None and after is None
        metas = self.table.query(
            key, values, index="gsi1", filter="expires_at > :now", forward=forward, limit=limit + 1, at_least=limit + 1
        )
        has_more = len(metas) > limit
        metas = metas[:limit]
        if forward:
            metas.reverse()
        outputs = self._pool.map(
            lambda m: self.table.query("pk = :pk AND begins_with(sk, :out)", {":pk": m["pk"], ":out": "OUT#"}),
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

    @staticmethod
    def _rows(tenant: str, response_id: str, prefix: str, items: list[dict[str, Any]], start: int) -> list[Row]:
        return [
            {
                "pk": _pk(response_id),
                "sk": f"{prefix}#{start + n:06d}",
                "item_id": str(item.get("id", "")),
                "gsi2pk": f"{tenant}#{item['id']}" if item.get("id") else None,
                **encode_item(item),
            }
            for n, item in enumerate(items)
        ]

    @staticmethod
    def _event_rows(response_id: str, events: list[tuple[int, str]]) -> list[Row]:
        return [{"pk": _pk(response_id), "sk": f"EVT#{seq:08d}", "event": data} for seq, data in events]

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
        expires = self._expires(response)
        rows = self._rows(tenant, response.id, "IN", input_items, 0) + self._event_rows(response.id, events)
        rows.append({"pk": _pk(response.id), "sk": "JOB", "job": to_json(job).decode()})
        for row in rows:
            row["expires_at"] = expires
            if not response.store:
                row.pop("gsi2pk", None)
        self.table.batch_write(rows)
        meta = self._meta_row(tenant, response, len(input_items), ancestors)
        meta.update(background=True, n_out=0, next_seq=len(events))
        self.table.put(meta, condition="attribute_not_exists(pk)")

    def job(self, response_id: str) -> dict[str, Any] | None:
        row = self.table.get({"pk": _pk(response_id), "sk": "JOB"})
        return dict(from_json(row["job"])) if row else None

    def progress(self, response_id: str) -> tuple[str, int, int] | None:
        """(status, committed output items, committed events) of a response, read strongly consistently."""
        meta = self.table.get(
            {"pk": _pk(response_id), "sk": _META},
            projection="#s, n_out, next_seq, expires_at",
            names={"#s": "status"},
        )
        if meta is None or int(meta["expires_at"]) <= _now():
            return None
        return str(meta["status"]), int(meta.get("n_out", 0)), int(meta.get("next_seq", 0))

    def start_background(self, response_id: str) -> bool:
        """queued → in_progress; False if the response is no longer queued (cancelled, or already started)."""
        try:
            self.table.update(
                {"pk": _pk(response_id), "sk": _META},
                "SET #s = :ip",
                condition="#s = :q",
                names={"#s": "status"},
                values={":ip": "in_progress", ":q": "queued"},
            )
            return True
        except ConditionFailed:
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
        save_job: bool = True,
    ) -> bool:
        """Write output items and events, then advance the record (and its status, when ``response`` has reached
        a terminal one) only if it is still ``in_progress``. With ``save_job``, ``job`` is written too, and
        ``job=None`` removes the job (it holds the request's sealed MCP credentials), which a terminal commit
        does. False: the response was cancelled meanwhile."""
        expires = self._expires(response)
        tenant = str(job["tenant"]) if job else self._tenant_of(response.id)
        rows = self._rows(tenant, response.id, "OUT", new_output, n_out - len(new_output))
        rows += self._event_rows(response.id, events)
        for row in rows:
            row["expires_at"] = expires
            if not response.store:
                row.pop("gsi2pk", None)
        self.table.batch_write(rows)
        try:
            self.table.update(
                {"pk": _pk(response.id), "sk": _META},
                "SET #s = :to, n_out = :n, next_seq = :seq, #r = :resp",
                condition="#s = :ip",
                names={"#s": "status", "#r": "response"},
                values={
                    ":to": response.status,
                    ":n": n_out,
                    ":seq": next_seq,
                    ":resp": response.model_dump_json(exclude={"output"}),
                    ":ip": "in_progress",
                },
            )
        except ConditionFailed:
            # cancelled or deleted meanwhile: take back what this commit wrote (it was never counted)
            self.table.batch_write(deletes=[{"pk": r["pk"], "sk": r["sk"]} for r in rows])
            return False
        if job is None:
            self.drop_job(response.id)
        elif save_job:
            self.save_job(response.id, job)
        return True

    def save_job(self, response_id: str, job: dict[str, Any]) -> None:
        """Write the job of a running response. A cancel or delete that raced this write removes the job after
        its own status write; this write checks the status after its own, so one of the two always removes it."""
        key = {"pk": _pk(response_id), "sk": _META}
        meta = self.table.get(key, projection="#s, expires_at", names={"#s": "status"})
        if meta is None or meta.get("status") != "in_progress":
            self.drop_job(response_id)
            return
        job_row = {"pk": _pk(response_id), "sk": "JOB", "job": to_json(job).decode()}
        self.table.put({**job_row, "expires_at": int(meta["expires_at"])})
        after = self.table.get(key, projection="#s", names={"#s": "status"})
        if after is None or after.get("status") != "in_progress":
            self.drop_job(response_id)

    def drop_job(self, response_id: str) -> None:
        self.table.delete({"pk": _pk(response_id), "sk": "JOB"})

    def _tenant_of(self, response_id: str) -> str:
        row = self.table.get({"pk": _pk(response_id), "sk": _META}, projection="tenant")
        return str((row or {}).get("tenant", ""))

    def find_item(self, tenant: str, item_id: str) -> dict[str, Any] | None:
        """A stored input or output item of the tenant's, by its id (GSI ``gsi2``), if its response is live."""
        keys, _ = self.table.query_page("gsi2pk = :k", {":k": f"{tenant}#{item_id}"}, index="gsi2", limit=1)
        for key in keys:
            row = self.table.get({"pk": key["pk"], "sk": key["sk"]})
            if row is not None and int(row.get("expires_at", 0)) > _now():
                return decode_item(row)
        return None

    def events(self, response_id: str, after: int, before: int) -> list[tuple[int, str]]:
        """Committed stream events with ``after < sequence_number < before``."""
        if before <= after + 1:
            return []
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(response_id), ":lo": f"EVT#{after + 1:08d}", ":hi": f"EVT#{before - 1:08d}"},
        )
        return [(int(str(r["sk"])[4:]), str(r["event"])) for r in rows]

    def cancel(self, tenant: str, response_id: str) -> Literal["cancelled", "not_background", "finished", "missing"]:
        """queued|in_progress → cancelled, for background responses; what happened otherwise."""
        try:
            self.table.update(
                {"pk": _pk(response_id), "sk": _META},
                "SET #s = :c",
                condition="tenant = :t AND background = :yes AND #s IN (:q, :ip) AND expires_at > :now",
                names={"#s": "status"},
                values={
                    ":c": "cancelled",
                    ":t": tenant,
                    ":yes": True,
                    ":q": "queued",
                    ":ip": "in_progress",
                    ":now": _now(),
                },
                old_on_failure=True,
            )
            self.table.delete({"pk": _pk(response_id), "sk": "JOB"})
            return "cancelled"
        except ConditionFailed as failed:
            if not self._live_meta(tenant, failed.old):
                return "missing"
            assert failed.old is not None
            return "finished" if failed.old.get("background") else "not_background"

    # --- delete ------------------------------------------------------------------------------------------------

    def delete(self, tenant: str, response_id: str) -> bool:
        if not self._live_meta(tenant, self._meta(response_id)):
            return False
        # META first: the response disappears at once, then its items follow.
        self.table.delete({"pk": _pk(response_id), "sk": _META}, condition="tenant = :t", values={":t": tenant})
        keys = self.table.query("pk = :pk", {":pk": _pk(response_id)}, projection="pk, sk")
        self.table.batch_write(deletes=keys)
        return True
