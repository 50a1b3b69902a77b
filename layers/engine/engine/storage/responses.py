"""Stored responses on the DynamoDB table (aws.md §3), laid out so a chain loads at constant cost.

Rows (every one carries ``expires_at``, the TTL; reads treat ``expires_at <= now`` as absent, since DynamoDB
deletes expired items up to two days late):

* ``RESP#{id}`` / ``META``: the response without its output, status, tenant, item counts, its ``parent`` and
  its place in the chain (``chain``, ``depth``), GSI keys for newest-first listing. No row holds a list of the
  chain's ids, so a record's size does not grow with the chain (records written before this carry
  ``ancestors``, which are still read).
  A background response also has ``EVT#{seq}`` (stream events) and ``JOB`` (its request) in this partition.
* ``CHAIN#{root id}``: every response of one chain (forks included), sorted by depth, so one paged Query
  returns a context in order:
  ``{depth:06d}#{id}#`` (head: tenant, counts, expiry, ``parent``), ``{depth:06d}#{id}#IN#{n:06d}`` (input items),
  ``{depth:06d}#{id}#OUT#{n:06d}`` (output items). A fork from the middle is one more response at its depth.

Loading a context is a GetItem of the record and one Query of the chain partition up to the response's own
rows (bounded requests, whatever the chain's length; siblings from forks are read and skipped); the lineage is
the walk up the head rows' ``parent`` links. A deleted or expired ancestor has no live head row, so its
descendants' contexts are gone with it, as before.

A warm process keeps the contexts it loaded or stored (``_ContextCache``): the next turn of the same chain then
reads only the record, the chain's ``#GEN`` row (which counts the chain's deletes) and the chain's first head row,
in one BatchGetItem of a few small attributes; a delete anywhere in the chain, or any of its responses
expiring (the kept context knows their earliest expiry), sends the next load back to the table. A process keeps
the context of each response it stores too, a chain's first included, so a warm chain never queries.

Responses stored before this layout (items under ``RESP#{id}`` as ``IN#n``/``OUT#n``, no ``chain``) still
load: their chains are read as they were written, and a response chained on one starts a new chain partition
whose record counts how many of its ancestors are in the old layout (``legacy``) and names them
(``legacy_ancestors``: a fixed list, the old chain's).

Items larger than a DynamoDB item go to the S3 bucket (``items``); the row keeps the object's key.

A background response created with ``store: false`` is kept only ``UNSTORED_SECONDS`` (10 minutes, as on
OpenAI) so it can be polled: its record says ``unstored``, it cannot be chained from, and its items are not
indexed for ``item_reference``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from threading import Lock
from typing import Any, Literal

from pydantic_core import from_json, to_json

from engine.errors import InvalidRequestError, PreviousResponseNotFoundError
from engine.models.response import Response
from engine.storage.base import Page, StoredContext
from engine.storage.items import BLOB_ATTRIBUTES, ItemCodec
from engine.storage.table import ConditionFailed, DynamoTable, Row, just_before

__all__ = ["UNSTORED_SECONDS", "DynamoResponseStore", "tenant_item_key"]

UNSTORED_SECONDS = 600

_META = "META"
_POSITIONS = 4096  # chain positions remembered per process (immutable once written)
_GEN = "#GEN"  # a chain's delete counter (sorts before its depth rows)
_TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})
_KEYS_AND_BLOBS = ", ".join(("pk", "sk", *BLOB_ATTRIBUTES))


def _pk(response_id: str) -> str:
    return f"RESP#{response_id}"


def _now() -> int:
    return int(time.time())


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


def tenant_item_key(tenant: str, item_id: str) -> str:
    """``gsi2pk`` of a stored item: ``#`` cannot appear in a tenant name (``engine.cli.keys`` refuses it), so
    the key is unambiguous; ``find_item`` still rechecks the tenant of what it finds."""
    return f"{tenant}#{item_id}"


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a response's items live: its chain partition and depth, and how many of its ancestors are in the
    old layout. ``chain`` is None for a response stored in the old layout."""

    tenant: str
    chain: str | None
    depth: int
    legacy: int

    def prefix(self, response_id: str) -> str:
        return f"{self.depth:06d}#{response_id}#"


@dataclass(slots=True)
class _Cached:
    generation: int  # the chain's delete count when the context was read
    expires: int  # the earliest expiry among the context's responses
    items: bytes  # the context, as a JSON array (a fresh copy on every hit)
    ancestors: tuple[str, ...]  # the response's chain, oldest first (immutable once written)

    @property
    def weight(self) -> int:
        """Bytes this entry holds, roughly (what the cache's size bound counts)."""
        return len(self.items) + 40 * len(self.ancestors)


class _ContextCache:
    """Contexts of finished responses, least recently used out first, bounded in entries and bytes."""

    def __init__(self, entries: int = 256, size: int = 64 * 1024 * 1024) -> None:
        self.entries, self.size, self.used = entries, size, 0
        self._data: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = Lock()

    def get(self, response_id: str) -> _Cached | None:
        with self._lock:
            found = self._data.get(response_id)
            if found is not None:
                self._data.move_to_end(response_id)
            return found

    def put(self, response_id: str, cached: _Cached) -> None:
        if cached.weight > self.size // 4:
            return
        with self._lock:
            old = self._data.pop(response_id, None)
            self.used -= old.weight if old else 0
            self._data[response_id] = cached
            self.used += cached.weight
            while len(self._data) > self.entries or self.used > self.size:
                _, dropped = self._data.popitem(last=False)
                self.used -= dropped.weight


def _extended(items: bytes, more: list[dict[str, Any]]) -> bytes:
    """The JSON array ``items`` with ``more`` appended."""
    if not more:
        return items
    tail = to_json(more)
    return tail if items == b"[]" else items[:-1] + b"," + tail[1:]


class DynamoResponseStore:
    """``ResponseStore`` on one DynamoDB table (and the items bucket for items over 350 KB)."""

    def __init__(self, table_name: str, retention_days: int, bucket: str = "") -> None:
        self.table = DynamoTable(table_name, retention_days)
        self.retention_seconds = self.table.retention_seconds
        self.items = ItemCodec(bucket)
        self._positions: OrderedDict[str, _Position] = OrderedDict()
        self._lock = Lock()
        self._contexts = _ContextCache()

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=16, thread_name_prefix="ddb")

    # --- positions ---------------------------------------------------------------------------------------------

    @staticmethod
    def _position_of(meta: Row) -> _Position:
        chain = meta.get("chain")
        return _Position(str(meta.get("tenant", "")), str(chain) if chain else None, int(meta.get("depth", 0)),
                         int(meta.get("legacy", 0)))  # fmt: skip

    def _remember(self, response_id: str, position: _Position) -> None:
        with self._lock:
            self._positions[response_id] = position
            self._positions.move_to_end(response_id)
            while len(self._positions) > _POSITIONS:
                self._positions.popitem(last=False)

    def _known_position(self, response_id: str) -> _Position | None:
        with self._lock:
            return self._positions.get(response_id)

    def _position(self, response_id: str) -> _Position | None:
        """A response's position (cached: it never changes once written), or None if it has no record."""
        with self._lock:
            known = self._positions.get(response_id)
        if known is not None:
            return known
        meta = self.table.get({"pk": _pk(response_id), "sk": _META}, projection="tenant, chain, depth, legacy")
        if meta is None:
            return None
        position = self._position_of(meta)
        self._remember(response_id, position)
        return position

    def _child_position(self, tenant: str, response_id: str, ancestors: list[str]) -> _Position:
        """The position of a new response whose chain is ``ancestors``."""
        parent = self._position(ancestors[-1]) if ancestors else None
        if parent is None or parent.chain is None:
            # a new chain, rooted at this response (after any ancestors stored in the old layout)
            return _Position(tenant, response_id, 0, len(ancestors))
        return _Position(tenant, parent.chain, parent.depth + 1, parent.legacy)

    # --- writes ------------------------------------------------------------------------------------------------

    def _expires(self, response: Response) -> int:
        return response.created_at + (self.retention_seconds if response.store else UNSTORED_SECONDS)

    def check_items(self, items: list[dict[str, Any]]) -> None:
        self.items.check(items)

    def _meta_row(self, tenant: str, response: Response, n_in: int, ancestors: list[str], at: _Position) -> Row:
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
            "parent": ancestors[-1] if ancestors else None,
            # the old layout's part of the chain: fixed when the chain started, so bounded like the rest
            "legacy_ancestors": ancestors[: at.legacy] or None,
            "chain": at.chain,
            "depth": at.depth,
            "legacy": at.legacy or None,
        }

    def _head_row(self, response: Response, at: _Position, n_in: int, n_out: int, ancestors: list[str]) -> Row:
        assert at.chain is not None
        return {
            "pk": f"CHAIN#{at.chain}",
            "sk": at.prefix(response.id),
            "tenant": at.tenant,
            # the lineage a context load walks up (the root's parent, if any, is in the old layout)
            "parent": ancestors[-1] if ancestors and at.depth else None,
            "n_in": n_in,
            "n_out": n_out,
            "expires_at": self._expires(response),
            # finished: its items will not change (a context that includes it may be cached)
            "done": True if response.status in _TERMINAL else None,
        }

    def _item_rows(
        self, response: Response, at: _Position, kind: str, items: list[dict[str, Any]], start: int
    ) -> list[Row]:
        """Rows of ``items`` (input or output, numbered from ``start``); repeated ids are numbered so a page of
        ``input_items`` never ends on an id whose cursor would be ambiguous (see ``list_input_items``)."""
        assert at.chain is not None
        counts: dict[str, int] = {}
        for item in items:
            if item.get("id"):
                counts[str(item["id"])] = counts.get(str(item["id"]), 0) + 1
        seen: dict[str, int] = {}
        rows: list[Row] = []
        for n, item in enumerate(items, start):
            item_id = str(item.get("id") or "")
            sk = f"{at.prefix(response.id)}{kind}#{n:06d}"
            row: Row = {
                "pk": f"CHAIN#{at.chain}",
                "sk": sk,
                "item_id": item_id,
                "tenant": at.tenant,
                # an unstored response's items are never found by item_reference
                "gsi2pk": tenant_item_key(at.tenant, item_id) if item_id and response.store else None,
                "expires_at": self._expires(response),
                **self.items.attrs(item, f"responses/{response.id}/{kind}/{n:06d}"),
            }
            if counts.get(item_id, 0) > 1:
                row["occ"], row["occs"] = seen.get(item_id, 0), counts[item_id]
                seen[item_id] = row["occ"] + 1
            rows.append(row)
        return rows

    def put(self, tenant: str, response: Response, input_items: list[dict[str, Any]], ancestors: list[str]) -> None:
        at = self._child_position(tenant, response.id, ancestors)
        rows = [self._head_row(response, at, len(input_items), len(response.output), ancestors)]
        rows += self._item_rows(response, at, "IN", input_items, 0)
        rows += self._item_rows(response, at, "OUT", [i.model_dump() for i in response.output], 0)
        # One BatchWriteItem for a typical response (25 rows a call), the record last. Batches are not atomic,
        # so the record counts its items and readers treat a response whose items are not all there yet as
        # absent. A TransactWriteItems would be atomic but costs twice the write capacity.
        self.table.batch_write([*rows, self._meta_row(tenant, response, len(input_items), ancestors, at)])
        self._remember(response.id, at)
        if not response.store or response.status not in _TERMINAL or at.legacy:
            return
        own = [*input_items, *(i.model_dump() for i in response.output)]
        if not ancestors:  # a new chain: nothing deleted from it yet, and nothing before it
            self._contexts.put(response.id, _Cached(0, self._expires(response), to_json(own), ()))
            return
        parent = self._contexts.get(ancestors[-1])
        if parent is not None:
            expires = min(parent.expires, self._expires(response))
            self._contexts.put(
                response.id, _Cached(parent.generation, expires, _extended(parent.items, own), tuple(ancestors))
            )

    # --- reads -------------------------------------------------------------------------------------------------

    @staticmethod
    def _live_meta(tenant: str, meta: Row | None) -> bool:
        return meta is not None and meta.get("tenant") == tenant and int(meta["expires_at"]) > _now()

    def _record(self, response_id: str) -> Row | None:
        meta = self.table.get({"pk": _pk(response_id), "sk": _META})
        if meta is not None:
            self._remember(response_id, self._position_of(meta))
        return meta

    def _response_from(self, meta: Row, outputs: list[Row]) -> Response:
        """The response as committed: the record's status, and exactly the output items it counts (a background
        worker cut off by a cancel may have written more, which were never committed)."""
        data = dict(from_json(meta["response"]))
        data["status"] = meta["status"]
        if data["status"] == "failed" and not data.get("error"):
            data["error"] = _machine_error(meta)
        n_out = int(meta.get("n_out", len(outputs)))
        data["output"] = self.items.decode_all(outputs[:n_out])
        return Response.model_validate(data)

    def _outputs(self, response_id: str, meta: Row) -> list[Row] | None:
        """The output rows of a response (None while some the record counts are still being written)."""
        at = self._position_of(meta)
        if at.chain is None:
            rows = self.table.query("pk = :pk AND begins_with(sk, :out)", {":pk": _pk(response_id), ":out": "OUT#"})
        else:
            rows = self.table.query(
                "pk = :pk AND begins_with(sk, :out)",
                {":pk": f"CHAIN#{at.chain}", ":out": f"{at.prefix(response_id)}OUT#"},
            )
        return rows if len(rows) >= int(meta.get("n_out", 0)) else None

    def get(self, tenant: str, response_id: str) -> Response | None:
        meta = self._record(response_id)
        if not self._live_meta(tenant, meta):
            return None
        assert meta is not None
        outputs = self._outputs(response_id, meta)
        return self._response_from(meta, outputs) if outputs is not None else None

    def load_context(self, tenant: str, response_id: str) -> StoredContext | None:
        cached, known = self._contexts.get(response_id), self._known_position(response_id)
        if cached is not None and known is not None and known.chain is not None:
            # A warm process: the record, the chain's delete count and its first response (the first to expire)
            # say whether what it kept still holds; only the attributes that say so are read.
            root = {"pk": f"CHAIN#{known.chain}", "sk": f"{0:06d}#{known.chain}#"}
            meta, counter, first = self.table.get_many(
                [{"pk": _pk(response_id), "sk": _META}, {"pk": f"CHAIN#{known.chain}", "sk": _GEN}, root],
                projection="pk, sk, tenant, expires_at, unstored, deletes",
            )
            if not self._live_meta(tenant, meta) or (meta or {}).get("unstored"):
                return None
            now = _now()
            same = int((counter or {}).get("deletes", 0)) == cached.generation
            if same and cached.expires > now and first is not None and int(first["expires_at"]) > now:
                items = list(from_json(cached.items))
                return StoredContext(items=items, ancestors=[*cached.ancestors, response_id])
        meta = self._record(response_id)
        if not self._live_meta(tenant, meta) or (meta or {}).get("unstored"):
            return None
        assert meta is not None
        at = self._position_of(meta)
        if at.chain is None:
            ancestors = [str(a) for a in meta.get("ancestors", [])]
            return self._legacy_context(tenant, response_id, meta, ancestors)
        rows = self.table.query(
            "pk = :pk AND sk <= :last", {":pk": f"CHAIN#{at.chain}", ":last": at.prefix(response_id) + "~"}
        )
        heads: dict[str, Row] = {}
        generation = 0
        for row in rows:
            if row["sk"] == _GEN:
                generation = int(row.get("deletes", 0))
                continue
            _, owner, rest = str(row["sk"]).split("#", 2)
            if not rest:
                heads[owner] = row
        now = _now()
        members = self._lineage(response_id, meta, heads, at, now)
        if "ancestors" in meta:
            legacy_ids = [str(a) for a in meta["ancestors"]][: at.legacy]
        else:
            legacy_ids = [str(a) for a in meta.get("legacy_ancestors") or []]
        wanted = {*members, response_id}
        by_response: dict[str, list[Row]] = {}
        for row in rows:
            if row["sk"] == _GEN:
                continue
            _, owner, rest = str(row["sk"]).split("#", 2)
            if rest and owner in wanted:  # a sibling from a fork is skipped
                by_response.setdefault(owner, []).append(row)
        ordered: list[Row] = []
        for owner in [*members, response_id]:
            head = meta if owner == response_id else heads[owner]
            owned = by_response.get(owner, [])
            inputs = [r for r in owned if str(r["sk"]).split("#", 3)[2] == "IN"]
            outputs = [r for r in owned if str(r["sk"]).split("#", 3)[2] == "OUT"]
            n_in, n_out = int(head.get("n_in", 0)), int(head.get("n_out", 0))
            if len(inputs) < n_in or len(outputs) < n_out:
                if owner == response_id:
                    return None  # still being written
                raise PreviousResponseNotFoundError(owner)
            ordered += inputs[:n_in] + outputs[:n_out]
        items = self._legacy_items(tenant, legacy_ids) + self.items.decode_all(ordered)
        ancestors = [*legacy_ids, *members]
        finished = meta.get("status") in _TERMINAL and all(heads[m].get("done") for m in members)
        if finished and not at.legacy:
            expires = min([int(meta["expires_at"]), *(int(heads[m]["expires_at"]) for m in members)])
            self._contexts.put(response_id, _Cached(generation, expires, to_json(items), tuple(ancestors)))
        return StoredContext(items=items, ancestors=[*ancestors, response_id])

    def _lineage(self, response_id: str, meta: Row, heads: dict[str, Row], at: _Position, now: int) -> list[str]:
        """The chain-partition responses ``response_id`` is chained on, oldest first: up the ``parent`` links of
        the head rows. Records written by this layout's first version list their chain (``ancestors``) and their
        head rows have no ``parent``: the walk takes the rest of the list from the first such record (one
        GetItem at most). An ancestor deleted or expired ends the walk: the context is gone with it."""
        members: list[str] = []
        if "ancestors" in meta:
            members = [str(a) for a in meta["ancestors"]][at.legacy :]
        else:
            parent, depth = meta.get("parent"), at.depth
            while depth > 0:
                if parent is None or str(parent) not in heads:
                    raise PreviousResponseNotFoundError(str(parent or response_id))
                owner = str(parent)
                members.append(owner)
                depth -= 1
                parent = heads[owner].get("parent")
                if parent is None and depth > 0:
                    listed = self.table.get({"pk": _pk(owner), "sk": _META}, projection="ancestors")
                    if listed is None:
                        raise PreviousResponseNotFoundError(owner)
                    members += reversed([str(a) for a in listed.get("ancestors", [])][at.legacy :])
                    break
            members.reverse()
        for owner in members:
            head = heads.get(owner)
            if head is None or int(head["expires_at"]) <= now:
                raise PreviousResponseNotFoundError(owner)
        return members

    def list_input_items(
        self, tenant: str, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None:
        meta = self._record(response_id)
        if not self._live_meta(tenant, meta):
            return None
        assert meta is not None
        at = self._position_of(meta)
        if at.chain is None:
            pk, low, high = _pk(response_id), "IN#", "IN#~"
        else:
            pk, low, high = f"CHAIN#{at.chain}", at.prefix(response_id) + "IN#", at.prefix(response_id) + "IN#~"
        ascending = order == "asc"
        if after is not None:
            cursor = self._cursor(tenant, pk, low, high, after, ascending)
            if cursor is None:
                raise InvalidRequestError(f"No input item with id '{after}' in this response.", param="after")
            # the page starts just past the cursor row
            low, high = (cursor + "\x00", high) if ascending else (low, just_before(cursor))
        # One row more than the page tells has_more; large rows fill DynamoDB's 1 MB pages early, so read on
        # (LastEvaluatedKey) until that row is in. A page then steps back from an id that repeats later in this
        # order: a cursor names an id, which must find exactly this row again.
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi", {":pk": pk, ":lo": low, ":hi": high}, forward=ascending,
            limit=limit + 1, at_least=limit + 1,
        )  # fmt: skip
        page, has_more = rows[:limit], len(rows) > limit
        if has_more:
            while page and not self._final(page[-1], ascending):
                page.pop()
            if not page:
                # every row of the page repeats an id further on: read on to a row a cursor can name
                page, has_more = self._through_final(pk, rows[0], high if ascending else low, ascending)
        return Page(self.items.decode_all(page), has_more)

    @staticmethod
    def _final(row: Row, ascending: bool) -> bool:
        """This row is the occurrence of its id that a cursor in this order resolves to."""
        if "occ" not in row:
            return True
        return int(row["occ"]) == (int(row["occs"]) - 1 if ascending else 0)

    def _through_final(self, pk: str, first: Row, bound: str, ascending: bool) -> tuple[list[Row], bool]:
        low, high = (first["sk"], bound) if ascending else (bound, first["sk"])
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi", {":pk": pk, ":lo": low, ":hi": high}, forward=ascending
        )
        for index, row in enumerate(rows):
            if self._final(row, ascending):
                return rows[: index + 1], index + 1 < len(rows)
        return rows, False

    def _cursor(self, tenant: str, pk: str, low: str, high: str, item_id: str, ascending: bool) -> str | None:
        """The sort key of the row an ``after`` cursor names: found through ``gsi2`` (one small Query), or, for an
        item the index has not caught up with (it is eventually consistent) or an old row, by reading the ids."""
        found = self.table.query(
            "gsi2pk = :k",
            {":k": tenant_item_key(tenant, item_id), ":pk": pk, ":lo": low, ":hi": high},
            index="gsi2",
            filter="pk = :pk AND sk BETWEEN :lo AND :hi",
        )
        keys = sorted(str(row["sk"]) for row in found)
        if not keys:
            index = self.table.query(
                "pk = :pk AND sk BETWEEN :lo AND :hi", {":pk": pk, ":lo": low, ":hi": high}, projection="sk, item_id"
            )
            keys = [str(r["sk"]) for r in index if r.get("item_id") == item_id]
        if not keys:
            return None
        return keys[-1] if ascending else keys[0]

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
        outputs = self._pool.map(lambda m: self._outputs(str(m["pk"]).removeprefix("RESP#"), m), metas)
        responses = [self._response_from(m, out) for m, out in zip(metas, outputs, strict=True) if out is not None]
        return Page(responses, has_more)

    def find_item(self, tenant: str, item_id: str) -> dict[str, Any] | None:
        """A stored input or output item of the tenant's, by its id (GSI ``gsi2``), if its response is live. The
        tenant is checked again on the row found (or, for an old row, on its response's record)."""
        keys = self.table.query("gsi2pk = :k", {":k": tenant_item_key(tenant, item_id)}, index="gsi2")
        for key in keys:
            row = self.table.get({"pk": key["pk"], "sk": key["sk"]})
            if row is None or int(row.get("expires_at", 0)) <= _now() or row.get("item_id") != item_id:
                continue
            owner = row.get("tenant")
            if owner is None and str(row["pk"]).startswith("RESP#"):
                owner = (self._position(str(row["pk"]).removeprefix("RESP#")) or _Position("", None, 0, 0)).tenant
            if owner == tenant:
                return self.items.decode(row)
        return None

    # --- the old layout (read only, except delete) -----------------------------------------------------------

    def _legacy_partition(self, response_id: str) -> tuple[Row | None, list[Row]]:
        """META and the IN/OUT rows of a response stored in the old layout (None: absent or incomplete)."""
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi", {":pk": _pk(response_id), ":lo": "IN#", ":hi": "OUT#~"}
        )
        meta = next((r for r in rows if r["sk"] == _META), None)
        inputs = [r for r in rows if str(r["sk"]).startswith("IN#")]
        outputs = [r for r in rows if str(r["sk"]).startswith("OUT#")]
        if meta is None or len(inputs) < int(meta.get("n_in", 0)) or len(outputs) < int(meta.get("n_out", 0)):
            return None, []
        return meta, inputs + outputs[: int(meta.get("n_out", len(outputs)))]

    def _legacy_items(self, tenant: str, ancestors: list[str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for ancestor_id, (meta, rows) in zip(ancestors, self._pool.map(self._legacy_partition, ancestors), strict=True):
            if not self._live_meta(tenant, meta):
                raise PreviousResponseNotFoundError(ancestor_id)
            items += self.items.decode_all(rows)
        return items

    def _legacy_context(self, tenant: str, response_id: str, meta: Row, ancestors: list[str]) -> StoredContext | None:
        earlier = self._legacy_items(tenant, ancestors)
        own_meta, rows = self._legacy_partition(response_id)
        if own_meta is None:
            return None
        return StoredContext(items=earlier + self.items.decode_all(rows), ancestors=[*ancestors, response_id])

    # --- background runs ---------------------------------------------------------------------------------------
    # A background response's record is its commit point: the worker writes output items and stream events
    # first, then advances ``n_out``/``next_seq`` with an update conditional on ``in_progress``. Readers see only
    # what the record counts, so a worker cut off by a cancel leaves nothing visible behind.

    def _event_rows(self, response: Response, events: list[tuple[int, str]]) -> list[Row]:
        """Stream events; one over the item limit (``response.completed`` carries the whole output) goes to the
        bucket like a large item."""
        expires = self._expires(response)
        return [
            {
                "pk": _pk(response.id),
                "sk": f"EVT#{seq:08d}",
                "expires_at": expires,
                **self.items.pack("event", data.encode(), f"responses/{response.id}/EVT/{seq:08d}"),
            }
            for seq, data in events
        ]

    def _job_row(self, response: Response, job: dict[str, Any]) -> Row:
        """The job (the request the worker runs); a large one goes to the bucket like a large item."""
        return {
            "pk": _pk(response.id),
            "sk": "JOB",
            "expires_at": self._expires(response),
            **self.items.pack("job", to_json(job), f"responses/{response.id}/JOB"),
        }

    def drop_job(self, response_id: str) -> None:
        """The job holds the request's MCP credentials: it goes when the run ends (its object too, if large)."""
        old = self.table.delete({"pk": _pk(response_id), "sk": "JOB"}, returning=True)
        if old:
            self.items.delete_blobs([old])

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
        at = self._child_position(tenant, response.id, ancestors)
        rows = [self._head_row(response, at, len(input_items), 0, ancestors)]
        rows += self._item_rows(response, at, "IN", input_items, 0)
        rows += self._event_rows(response, events)
        rows.append(self._job_row(response, job))
        self.table.batch_write(rows)
        meta = self._meta_row(tenant, response, len(input_items), ancestors, at)
        meta.update(background=True, n_out=0, next_seq=len(events))
        self.table.put(meta, condition="attribute_not_exists(pk)")
        self._remember(response.id, at)

    def job(self, response_id: str) -> dict[str, Any] | None:
        row = self.table.get({"pk": _pk(response_id), "sk": "JOB"})
        return dict(from_json(self.items.unpack("job", row))) if row else None

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
        at = self._position(response.id)
        if at is None:
            return False  # deleted meanwhile
        rows = self._item_rows(response, at, "OUT", new_output, n_out - len(new_output)) if at.chain else []
        rows += self._event_rows(response, events)
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
            self.items.delete_blobs(rows)
            return False
        if at.chain is not None and (new_output or response.status in _TERMINAL):
            # the head row counts committed outputs too (contexts chained on this response read it), and says
            # when the response is finished
            done = "SET n_out = :n, done = :done" if response.status in _TERMINAL else "SET n_out = :n"
            values: Row = {":n": n_out, ":done": True} if response.status in _TERMINAL else {":n": n_out}
            self.table.update({"pk": f"CHAIN#{at.chain}", "sk": at.prefix(response.id)}, done, values=values)
        if job is None:
            self.drop_job(response.id)
        elif save_job:
            self.save_job(response.id, job)
        return True

    def save_job(self, response_id: str, job: dict[str, Any]) -> None:
        """Write the job of a running response. A cancel or delete that raced this write removes the job after
        its own status write; this write checks the status after its own, so one of the two always removes it."""
        key = {"pk": _pk(response_id), "sk": _META}
        meta = self.table.get(key, projection="#s, expires_at, created_at, unstored", names={"#s": "status"})
        if meta is None or meta.get("status") != "in_progress":
            self.drop_job(response_id)
            return
        row = {"pk": _pk(response_id), "sk": "JOB", "expires_at": int(meta["expires_at"]),
               **self.items.pack("job", to_json(job), f"responses/{response_id}/JOB")}  # fmt: skip
        self.table.put(row)
        after = self.table.get(key, projection="#s", names={"#s": "status"})
        if after is None or after.get("status") != "in_progress":
            self.drop_job(response_id)

    def events(self, response_id: str, after: int, before: int) -> list[tuple[int, str]]:
        """Committed stream events with ``after < sequence_number < before``."""
        if before <= after + 1:
            return []
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(response_id), ":lo": f"EVT#{after + 1:08d}", ":hi": f"EVT#{before - 1:08d}"},
        )
        texts = self.items.decode_texts("event", rows)
        return [(int(str(r["sk"])[4:]), text) for r, text in zip(rows, texts, strict=True)]

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
            self.drop_job(response_id)
            return "cancelled"
        except ConditionFailed as failed:
            if not self._live_meta(tenant, failed.old):
                return "missing"
            assert failed.old is not None
            return "finished" if failed.old.get("background") else "not_background"

    # --- delete ------------------------------------------------------------------------------------------------

    def delete(self, tenant: str, response_id: str) -> bool:
        meta = self._record(response_id)
        if not self._live_meta(tenant, meta):
            return False
        assert meta is not None
        # META first: the response disappears at once, then its rows and objects follow.
        self.table.delete({"pk": _pk(response_id), "sk": _META}, condition="tenant = :t", values={":t": tenant})
        rows = self.table.query("pk = :pk", {":pk": _pk(response_id)}, projection=_KEYS_AND_BLOBS)
        at = self._position_of(meta)
        if at.chain is not None:
            rows += self.table.query(
                "pk = :pk AND begins_with(sk, :own)",
                {":pk": f"CHAIN#{at.chain}", ":own": at.prefix(response_id)},
                projection=_KEYS_AND_BLOBS,
            )
        self.table.batch_write(deletes=[{"pk": r["pk"], "sk": r["sk"]} for r in rows])
        self.items.delete_blobs(rows)
        if at.chain is not None:
            self._count_delete(at.chain)
        return True

    def _count_delete(self, chain: str) -> None:
        """After a response's rows are gone: a context read before (and kept by a warm process) is now stale, so
        the chain's delete count moves on; the last response of a chain takes the counter with it."""
        left, _ = self.table.query_page("pk = :pk", {":pk": f"CHAIN#{chain}"}, projection="pk, sk", limit=2)
        if all(row["sk"] == _GEN for row in left):
            self.table.delete({"pk": f"CHAIN#{chain}", "sk": _GEN})
            return
        self.table.update(
            {"pk": f"CHAIN#{chain}", "sk": _GEN},
            "ADD deletes :one SET expires_at = :exp",
            values={":one": 1, ":exp": _now() + self.retention_seconds},
        )
