"""Conversations on the responses table; a conversation and its items expire whole.

Layout under ``pk = CONV#{id}``: ``META`` (tenant, metadata, created_at, ``expires_at``, ``next_seq``,
``items_expire_at``, the keys of its items in the bucket) and one ``ITEM#{seq:06d}`` per item (the item, its
id, ``gsi2pk = #CONV#{id}#{item id}`` so an item or a cursor is found by one small Query).

Expiry: the record's ``expires_at`` is the conversation's, renewed by every append (a create that uses the
conversation appends its input and output). Items are valid exactly while the record is: reads never judge
an item by its own row. An item row's ``expires_at`` is only DynamoDB's TTL for cleaning up after the
conversation, kept at or after the record's: when a renewal would pass it, every item row moves to twice the
retention ahead (so that rewrite happens at most once per retention period), and objects in the bucket are
copied onto themselves on every renewal (S3's lifecycle rule counts from an object's last write).

Appends allocate their sequence numbers with one atomic ``ADD next_seq`` on ``META``, then write the items, so
concurrent appends never overwrite each other.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, Literal

from pydantic_core import from_json, to_json

from engine.errors import InvalidRequestError
from engine.storage.base import ConversationRecord, Page
from engine.storage.items import ItemCodec
from engine.storage.table import ConditionFailed, DynamoTable, Row, just_before

__all__ = ["DynamoConversationStore"]

_META = "META"
_FIRST, _LAST = "ITEM#", "ITEM#~"


def _pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _sk(seq: int) -> str:
    return f"ITEM#{seq:06d}"


def _item_key(conversation_id: str, item_id: str) -> str:
    """``gsi2pk`` of a conversation's item: starts with ``#``, which no tenant name does, so it never meets the
    tenants' item keys (``tenant#item``) that ``item_reference`` looks up."""
    return f"#CONV#{conversation_id}#{item_id}"


def _now() -> int:
    return int(time.time())


class DynamoConversationStore:
    """``ConversationStore`` on the responses table (and the items bucket for items over 350 KB)."""

    def __init__(self, table_name: str, retention_days: int, bucket: str = "") -> None:
        self.table = DynamoTable(table_name, retention_days)
        self.retention_seconds = self.table.retention_seconds
        self.items_codec = ItemCodec(bucket)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=8, thread_name_prefix="conv")

    @staticmethod
    def _live(row: Row | None, tenant: str | None = None) -> bool:
        return (
            row is not None
            and (tenant is None or row.get("tenant") == tenant)
            and int(row.get("expires_at", 0)) > _now()
        )

    @staticmethod
    def _record(conversation_id: str, meta: Row) -> ConversationRecord:
        return {
            "id": conversation_id,
            "metadata": dict(from_json(meta["metadata"])),
            "created_at": int(meta["created_at"]),
        }

    def _item_rows(self, conversation_id: str, items: list[dict[str, Any]], start: int, ttl: int) -> list[Row]:
        rows = []
        for seq, item in enumerate(items, start):
            item_id = str(item.get("id", ""))
            rows.append(
                {
                    "pk": _pk(conversation_id),
                    "sk": _sk(seq),
                    "item_id": item_id,
                    "gsi2pk": _item_key(conversation_id, item_id) if item_id else None,
                    "expires_at": ttl,
                    **self.items_codec.attrs(item, f"conversations/{conversation_id}/{seq:06d}"),
                }
            )
        return rows

    # --- conversations -----------------------------------------------------------------------------------------

    def check_items(self, items: list[dict[str, Any]]) -> None:
        self.items_codec.check(items)

    def create(
        self, tenant: str, conversation_id: str, metadata: dict[str, str], items: list[dict[str, Any]]
    ) -> ConversationRecord:
        """Items first, then the record (conditionally): the conversation becomes visible whole."""
        created_at = _now()
        ttl = created_at + 2 * self.retention_seconds
        rows = self._item_rows(conversation_id, items, 0, ttl)
        self.table.batch_write(rows)
        meta = {
            "pk": _pk(conversation_id),
            "sk": _META,
            "tenant": tenant,
            "metadata": to_json(metadata).decode(),
            "created_at": created_at,
            "expires_at": created_at + self.retention_seconds,
            "items_expire_at": ttl,
            "next_seq": len(items),
            "blobs": self.items_codec.blob_keys(rows) or None,
        }
        self.table.put(meta, condition="attribute_not_exists(pk)")
        return {"id": conversation_id, "metadata": metadata, "created_at": created_at}

    def _meta(self, conversation_id: str) -> Row | None:
        return self.table.get({"pk": _pk(conversation_id), "sk": _META})

    def get(self, tenant: str, conversation_id: str) -> ConversationRecord | None:
        meta = self._meta(conversation_id)
        if not self._live(meta, tenant):
            return None
        assert meta is not None
        return self._record(conversation_id, meta)

    def update_metadata(self, tenant: str, conversation_id: str, metadata: dict[str, str]) -> ConversationRecord | None:
        try:
            row = self.table.update(
                {"pk": _pk(conversation_id), "sk": _META},
                "SET metadata = :m",
                condition="tenant = :t AND expires_at > :now",
                values={":m": to_json(metadata).decode(), ":t": tenant, ":now": _now()},
                returns="ALL_NEW",
            )
        except ConditionFailed:
            return None
        assert row is not None
        return self._record(conversation_id, row)

    def delete(self, tenant: str, conversation_id: str) -> bool:
        """The record first (the conversation is gone at once), then its items and their objects."""
        try:
            self.table.delete(
                {"pk": _pk(conversation_id), "sk": _META},
                condition="tenant = :t AND expires_at > :now",
                values={":t": tenant, ":now": _now()},
            )
        except ConditionFailed:
            return False
        rows = self.table.query("pk = :pk", {":pk": _pk(conversation_id)}, projection="pk, sk, item_blob")
        self.table.batch_write(deletes=[{"pk": r["pk"], "sk": r["sk"]} for r in rows])
        self.items_codec.delete_blobs(rows)
        return True

    # --- items -------------------------------------------------------------------------------------------------

    def append(self, tenant: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        """Add items at the end, in order, and renew the conversation; False if it is absent. Sequence numbers
        come from one atomic ``ADD`` on the record, so concurrent appends each get their own range."""
        if not items:
            return self.get(tenant, conversation_id) is not None
        now = _now()
        try:
            meta = self.table.update(
                {"pk": _pk(conversation_id), "sk": _META},
                "ADD next_seq :n SET expires_at = :exp",
                condition="tenant = :t AND expires_at > :now",
                values={":n": len(items), ":exp": now + self.retention_seconds, ":t": tenant, ":now": now},
                returns="ALL_NEW",
            )
        except ConditionFailed:
            return False
        assert meta is not None
        start = int(meta["next_seq"]) - len(items)
        ttl = int(meta.get("items_expire_at", 0))
        if ttl < now + self.retention_seconds:
            ttl = self._renew_items(conversation_id, now)
        rows = self._item_rows(conversation_id, items, start, ttl)
        self.table.batch_write(rows)
        blobs = self.items_codec.blob_keys(rows)
        if self.items_codec.blobs is not None and meta.get("blobs"):
            self.items_codec.blobs.renew([str(key) for key in meta["blobs"]])
        if blobs:
            self.table.update(
                {"pk": _pk(conversation_id), "sk": _META},
                "SET blobs = list_append(if_not_exists(blobs, :none), :new)",
                values={":none": [], ":new": blobs},
            )
        return True

    def _renew_items(self, conversation_id: str, now: int) -> int:
        """Move every item row's TTL to twice the retention ahead (at most once per retention period)."""
        ttl = now + 2 * self.retention_seconds
        self.table.update({"pk": _pk(conversation_id), "sk": _META}, "SET items_expire_at = :ttl", values={":ttl": ttl})
        keys = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(conversation_id), ":lo": _FIRST, ":hi": _LAST},
            projection="pk, sk",
        )

        def renew(key: Row) -> None:
            try:
                self.table.update(key, "SET expires_at = :ttl", condition="attribute_exists(pk)", values={":ttl": ttl})
            except ConditionFailed:
                pass  # deleted meanwhile

        list(self._pool.map(renew, keys))
        return ttl

    def items(self, tenant: str, conversation_id: str) -> list[dict[str, Any]] | None:
        """Every item, oldest first; None if the conversation is absent."""
        if self.get(tenant, conversation_id) is None:
            return None
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi", {":pk": _pk(conversation_id), ":lo": _FIRST, ":hi": _LAST}
        )
        return self.items_codec.decode_all(rows)

    def _occurrences(self, conversation_id: str, item_id: str) -> list[str]:
        """Sort keys of the conversation's items with this id, in order: one Query on ``gsi2`` (eventually
        consistent), or, when it finds none, a read of the conversation's ids."""
        found = self.table.query("gsi2pk = :k", {":k": _item_key(conversation_id, item_id)}, index="gsi2")
        keys = sorted(str(row["sk"]) for row in found if row.get("pk") == _pk(conversation_id))
        if keys:
            return keys
        index = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(conversation_id), ":lo": _FIRST, ":hi": _LAST, ":id": item_id},
            filter="item_id = :id",
            projection="sk",
        )
        return [str(row["sk"]) for row in index]

    def _find(self, conversation_id: str, item_id: str) -> Row | None:
        keys = self._occurrences(conversation_id, item_id)
        return self.table.get({"pk": _pk(conversation_id), "sk": keys[0]}) if keys else None

    def list_items(
        self, tenant: str, conversation_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None:
        if self.get(tenant, conversation_id) is None:
            return None
        ascending = order == "asc"
        low, high = _FIRST, _LAST
        if after is not None:
            occurrences = self._occurrences(conversation_id, after)
            if not occurrences:
                raise InvalidRequestError(f"No item with id '{after}' in this conversation.", param="after")
            # a repeated id names its last occurrence in this order (pages never end on an earlier one)
            cursor = occurrences[-1] if ascending else occurrences[0]
            low, high = (cursor + "\x00", high) if ascending else (low, just_before(cursor))
        values = {":pk": _pk(conversation_id), ":lo": low, ":hi": high}
        # one row more than the page tells has_more; read on past 1 MB pages (large rows) until it is in
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi", values, forward=ascending, limit=limit + 1, at_least=limit + 1
        )
        page, has_more = rows[:limit], len(rows) > limit
        if has_more:
            # A page ends where a cursor can find it again: not on an id that repeats further on in this order.
            while page and not self._final(conversation_id, page[-1], ascending):
                page.pop()
            if not page:
                page, has_more = self._through_final(conversation_id, rows[0], high if ascending else low, ascending)
        return Page(self.items_codec.decode_all(page), has_more)

    def _final(self, conversation_id: str, row: Row, ascending: bool) -> bool:
        if not row.get("item_id"):
            return True
        occurrences = self._occurrences(conversation_id, str(row["item_id"]))
        return not occurrences or str(row["sk"]) == (occurrences[-1] if ascending else occurrences[0])

    def _through_final(self, conversation_id: str, first: Row, bound: str, ascending: bool) -> tuple[list[Row], bool]:
        low, high = (first["sk"], bound) if ascending else (bound, first["sk"])
        rows = self.table.query(
            "pk = :pk AND sk BETWEEN :lo AND :hi",
            {":pk": _pk(conversation_id), ":lo": low, ":hi": high},
            forward=ascending,
        )
        for index, row in enumerate(rows):
            if self._final(conversation_id, row, ascending):
                return rows[: index + 1], index + 1 < len(rows)
        return rows, False

    def get_item(self, tenant: str, conversation_id: str, item_id: str) -> dict[str, Any] | None | Literal[False]:
        """The item; None if the conversation has no such item; False if the conversation itself is absent."""
        if self.get(tenant, conversation_id) is None:
            return False
        row = self._find(conversation_id, item_id)
        return self.items_codec.decode(row) if row is not None else None

    def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool | None:
        """True when deleted; False if the conversation has no such item; None if the conversation is absent."""
        if self.get(tenant, conversation_id) is None:
            return None
        row = self._find(conversation_id, item_id)
        if row is None:
            return False
        self.table.delete({"pk": row["pk"], "sk": row["sk"]})
        self.items_codec.delete_blobs([row])
        return True
