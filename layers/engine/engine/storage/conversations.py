"""DynamoDB repository of conversations, in the responses' table.

Layout under ``pk = CONV#{id}``: ``META`` (tenant, metadata, created_at, expires_at, ``next_seq``) and one
``ITEM#{seq:06d}`` per item (the item's JSON, ``item_id`` for lookups and ``after`` cursors). Every row carries
``expires_at`` (TTL); reads treat an expired row as absent. Appends allocate their sequence numbers with one
atomic ``ADD next_seq`` on ``META`` (which also renews the conversation's expiry), then write the items, so
concurrent appends never overwrite each other.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import from_json, to_json

from engine.errors import InvalidRequestError
from engine.storage.base import Page
from engine.storage.dynamodb import DynamoTable, _decode_item, _encode_item

if TYPE_CHECKING:
    pass

__all__ = ["ConversationRecord", "DynamoConversationStore", "get_conversation_store"]

_META = "META"

ConversationRecord = dict[str, Any]
"""``{"id", "metadata", "created_at"}`` of a live conversation."""


def _pk(conversation_id: str) -> dict[str, str]:
    return {"S": f"CONV#{conversation_id}"}


def _sk(seq: int) -> dict[str, str]:
    return {"S": f"ITEM#{seq:06d}"}


class DynamoConversationStore(DynamoTable):
    """Conversations of one tenant each; an expired or other tenant's conversation reads as absent."""

    def _expires(self) -> dict[str, str]:
        return {"N": str(int(time.time()) + self.retention_seconds)}

    @staticmethod
    def _live(row: dict[str, Any] | None, tenant: str | None = None) -> bool:
        return (
            row is not None
            and (tenant is None or row.get("tenant", {}).get("S") == tenant)
            and int(row.get("expires_at", {}).get("N", "0")) > int(time.time())
        )

    @staticmethod
    def _record(conversation_id: str, meta: dict[str, Any]) -> ConversationRecord:
        return {
            "id": conversation_id,
            "metadata": dict(from_json(meta["metadata"]["S"])),
            "created_at": int(meta["created_at"]["N"]),
        }

    def _item_rows(
        self, conversation_id: str, items: list[dict[str, Any]], start: int, expires: dict[str, str]
    ) -> list[dict[str, Any]]:
        return [
            {
                "pk": _pk(conversation_id),
                "sk": _sk(start + n),
                "item_id": {"S": str(item.get("id", ""))},
                **_encode_item(item),
                "expires_at": expires,
            }
            for n, item in enumerate(items)
        ]

    # --- conversations -----------------------------------------------------------------------------------------

    def check_items(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            _encode_item(item)

    def create(
        self, tenant: str, conversation_id: str, metadata: dict[str, str], items: list[dict[str, Any]]
    ) -> ConversationRecord:
        """Items first, then the record (conditionally): the conversation becomes visible whole."""
        expires = self._expires()
        created_at = int(time.time())
        rows = self._item_rows(conversation_id, items, 0, expires)
        self._batch_write([{"PutRequest": {"Item": row}} for row in rows])
        meta = {
            "pk": _pk(conversation_id),
            "sk": {"S": _META},
            "tenant": {"S": tenant},
            "metadata": {"S": to_json(metadata).decode()},
            "created_at": {"N": str(created_at)},
            "expires_at": expires,
            "next_seq": {"N": str(len(items))},
        }
        self._ddb.put_item(TableName=self.table_name, Item=meta, ConditionExpression="attribute_not_exists(pk)")
        return {"id": conversation_id, "metadata": metadata, "created_at": created_at}

    def _meta(self, conversation_id: str) -> dict[str, Any] | None:
        result = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": _pk(conversation_id), "sk": {"S": _META}}, ConsistentRead=True
        )
        return result.get("Item")

    def get(self, tenant: str, conversation_id: str) -> ConversationRecord | None:
        meta = self._meta(conversation_id)
        if not self._live(meta, tenant):
            return None
        assert meta is not None
        return self._record(conversation_id, meta)

    def update_metadata(self, tenant: str, conversation_id: str, metadata: dict[str, str]) -> ConversationRecord | None:
        try:
            result = self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": _pk(conversation_id), "sk": {"S": _META}},
                UpdateExpression="SET metadata = :m",
                ConditionExpression="tenant = :t AND expires_at > :now",
                ExpressionAttributeValues={
                    ":m": {"S": to_json(metadata).decode()},
                    ":t": {"S": tenant},
                    ":now": {"N": str(int(time.time()))},
                },
                ReturnValues="ALL_NEW",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return None
        return self._record(conversation_id, result["Attributes"])

    def delete(self, tenant: str, conversation_id: str) -> bool:
        """The record first (the conversation is gone at once), then its items."""
        try:
            self._ddb.delete_item(
                TableName=self.table_name,
                Key={"pk": _pk(conversation_id), "sk": {"S": _META}},
                ConditionExpression="tenant = :t AND expires_at > :now",
                ExpressionAttributeValues={":t": {"S": tenant}, ":now": {"N": str(int(time.time()))}},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        keys = self._query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _pk(conversation_id)},
            ProjectionExpression="pk, sk",
        )
        self._batch_write([{"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}} for k in keys])
        return True

    # --- items -------------------------------------------------------------------------------------------------

    def append(self, tenant: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        """Add items at the end, in order; False if the conversation is absent. Sequence numbers come from one
        atomic ``ADD`` on the record, so concurrent appends each get their own range."""
        if not items:
            return self.get(tenant, conversation_id) is not None
        expires = self._expires()
        try:
            result = self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": _pk(conversation_id), "sk": {"S": _META}},
                UpdateExpression="ADD next_seq :n SET expires_at = :exp",
                ConditionExpression="tenant = :t AND expires_at > :now",
                ExpressionAttributeValues={
                    ":n": {"N": str(len(items))},
                    ":exp": expires,
                    ":t": {"S": tenant},
                    ":now": {"N": str(int(time.time()))},
                },
                ReturnValues="UPDATED_NEW",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        start = int(result["Attributes"]["next_seq"]["N"]) - len(items)
        rows = self._item_rows(conversation_id, items, start, expires)
        self._batch_write([{"PutRequest": {"Item": row}} for row in rows])
        return True

    def _item_query(self, conversation_id: str, low: str = "ITEM#", high: str = "ITEM#~", **kwargs: Any) -> Any:
        now = {":now": {"N": str(int(time.time()))}}
        return dict(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={":pk": _pk(conversation_id), ":lo": {"S": low}, ":hi": {"S": high}, **now},
            **kwargs,
        )

    def items(self, tenant: str, conversation_id: str) -> list[dict[str, Any]] | None:
        """Every live item, oldest first; None if the conversation is absent."""
        if self.get(tenant, conversation_id) is None:
            return None
        return [_decode_item(r) for r in self._query_all(**self._item_query(conversation_id))]

    def _find(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        query = self._item_query(conversation_id)
        query["FilterExpression"] += " AND item_id = :id"
        query["ExpressionAttributeValues"][":id"] = {"S": item_id}
        rows = self._query_all(**query)
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
            if order == "asc":
                low = cursor["sk"]["S"] + "\x00"
            else:
                high = cursor["sk"]["S"][:-1] + chr(ord(cursor["sk"]["S"][-1]) - 1) + "~"
        # A filtered query's Limit counts rows read, not rows kept: read pages until there is one row too many.
        kwargs = self._item_query(conversation_id, low, high, ScanIndexForward=order == "asc", Limit=limit + 1)
        rows: list[dict[str, Any]] = []
        while len(rows) <= limit:
            result = self._ddb.query(TableName=self.table_name, ConsistentRead=True, **kwargs)
            rows.extend(result.get("Items", []))
            if "LastEvaluatedKey" not in result:
                break
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]
        return Page([_decode_item(r) for r in rows[:limit]], len(rows) > limit)

    def get_item(self, tenant: str, conversation_id: str, item_id: str) -> dict[str, Any] | None | Literal[False]:
        """The item; None if the conversation has no such item; False if the conversation itself is absent."""
        if self.get(tenant, conversation_id) is None:
            return False
        row = self._find(conversation_id, item_id)
        return _decode_item(row) if row is not None else None

    def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool | None:
        """True when deleted; False if the conversation has no such item; None if the conversation is absent."""
        if self.get(tenant, conversation_id) is None:
            return None
        row = self._find(conversation_id, item_id)
        if row is None:
            return False
        self._ddb.delete_item(TableName=self.table_name, Key={"pk": row["pk"], "sk": row["sk"]})
        return True


@lru_cache(maxsize=1)
def get_conversation_store() -> DynamoConversationStore:
    from engine.settings import get_settings

    settings = get_settings()
    return DynamoConversationStore(table_name=settings.table_name, retention_days=settings.retention_days)
