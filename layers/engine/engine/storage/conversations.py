"""DynamoDB repository of conversations, in the responses' table.

Layout under ``pk = CONV#{id}``: ``META`` (tenant, metadata, created_at, expires_at, ``next_seq``) and one
``ITEM#{seq:06d}`` per item (the item's JSON, ``item_id`` for lookups and ``after`` cursors). Every row carries
``expires_at`` (TTL); reads treat an expired row as absent. Appends allocate their sequence numbers with one
atomic ``ADD next_seq`` on ``META`` (which also renews the conversation's expiry), then write the items, so
concurrent appends never overwrite each other.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic_core import from_json, to_json

from engine.errors import InvalidRequestError
from engine.storage.base import ConversationRecord, Page
from engine.storage.responses import decode_item, encode_item
from engine.storage.table import ConditionFailed, DynamoTable, Row

__all__ = ["DynamoConversationStore"]

_META = "META"


def _pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _sk(seq: int) -> str:
    return f"ITEM#{seq:06d}"


def _now() -> int:
    return int(time.time())


class DynamoConversationStore:
    """``ConversationStore`` on the responses table."""

    def __init__(self, table_name: str, retention_days: int) -> None:
        self.table = DynamoTable(table_name, retention_days)
        self.retention_seconds = self.table.retention_seconds

    def _expires(self) -> int:
        return _now() + self.retention_seconds

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

    @staticmethod
    def _item_rows(conversation_id: str, items: list[dict[str, Any]], start: int, expires: int) -> list[Row]:
        return [
            {
                "pk": _pk(conversation_id),
                "sk": _sk(start + n),
                "item_id": str(item.get("id", "")),
                **encode_item(item),
                "expires_at": expires,
            }
            for n, item in enumerate(items)
        ]

    # --- conversations -----------------------------------------------------------------------------------------

    def check_items(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            encode_item(item)

    def create(
        self, tenant: str, conversation_id: str, metadata: dict[str, str], items: list[dict[str, Any]]
    ) -> ConversationRecord:
        """Items first, then the record (conditionally): the conversation becomes visible whole."""
        expires = self._expires()
        created_at = int(time.time())
        rows = self._item_rows(conversation_id, items, 0, expires)
        self.table.batch_write(rows)
        meta = {
            "pk": _pk(conversation_id),
            "sk": _META,
            "tenant": tenant,
            "metadata": to_json(metadata).decode(),
            "created_at": created_at,
            "expires_at": expires,
            "next_seq": len(items),
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
        """The record first (the conversation is gone at once), then its items."""
        try:
            self.table.delete(
                {"pk": _pk(conversation_id), "sk": _META},
                condition="tenant = :t AND expires_at > :now",
                values={":t": tenant, ":now": _now()},
            )
        except ConditionFailed:
            return False
        keys = self.table.query("pk = :pk", {":pk": _pk(conversation_id)}, projection="pk, sk")
        self.table.batch_write(deletes=keys)
        return True

    # --- items -------------------------------------------------------------------------------------------------

    def append(self, tenant: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        """Add items at the end, in order; False if the conversation is absent. Sequence numbers come from one
        atomic ``ADD`` on the record, so concurrent appends each get their own range."""
        if not items:
            return self.get(tenant, conversation_id) is not None
        expires = self._expires()
        try:
            result = self.table.update(
                {"pk": _pk(conversation_id), "sk": _META},
                "ADD next_seq :n SET expires_at = :exp",
                condition="tenant = :t AND expires_at > :now",
                values={":n": len(items), ":exp": expires, ":t": tenant, ":now": _now()},
                returns="UPDATED_NEW",
            )
        except ConditionFailed:
            return False
        assert result is not None
        start = int(result["next_seq"]) - len(items)
        self.table.batch_write(self._item_rows(conversation_id, items, start, expires))
        return True

    @staticmethod
    def _item_query(conversation_id: str, low: str = "ITEM#", high: str = "ITEM#~") -> dict[str, Any]:
        return {
            "key": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "filter": "expires_at > :now",
            "values": {":pk": _pk(conversation_id), ":lo": low, ":hi": high, ":now": _now()},
        }

    def items(self, tenant: str, conversation_id: str) -> list[dict[str, Any]] | None:
        """Every live item, oldest first; None if the conversation is absent."""
        if self.get(tenant, conversation_id) is None:
            return None
        return [decode_item(r) for r in self.table.query(**self._item_query(conversation_id))]

    def _find(self, conversation_id: str, item_id: str) -> Row | None:
        query = self._item_query(conversation_id)
        query["filter"] += " AND item_id = :id"
        query["values"][":id"] = item_id
        rows = self.table.query(**query)
        return rows[0] if rows else None

    def list_items(
        self, tenant: str, conversation_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None:
        if self.get(tenant, conversation_id) is None:
            return None
        low, high = "ITEM#", "ITEM#~"
        if after is not None:
            cursor = self._find(conversation_id, after)
            if cursor is None:
                raise InvalidRequestError(f"No item with id '{after}' in this conversation.", param="after")
            sk = str(cursor["sk"])
            if order == "asc":
                low = sk + "\x00"
            else:
                high = sk[:-1] + chr(ord(sk[-1]) - 1) + "~"
        # A filtered query's Limit counts rows read, not rows kept: read pages until there is one row too many.
        rows = self.table.query(
            **self._item_query(conversation_id, low, high), forward=order == "asc", limit=limit + 1, at_least=limit + 1
        )
        return Page([decode_item(r) for r in rows[:limit]], len(rows) > limit)

    def get_item(self, tenant: str, conversation_id: str, item_id: str) -> dict[str, Any] | None | Literal[False]:
        """The item; None if the conversation has no such item; False if the conversation itself is absent."""
        if self.get(tenant, conversation_id) is None:
            return False
        row = self._find(conversation_id, item_id)
        return decode_item(row) if row is not None else None

    def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool | None:
        """True when deleted; False if the conversation has no such item; None if the conversation is absent."""
        if self.get(tenant, conversation_id) is None:
            return None
        row = self._find(conversation_id, item_id)
        if row is None:
            return False
        self.table.delete({"pk": row["pk"], "sk": row["sk"]})
        return True
