"""Vector stores in the table: the store, its files and its file batches.

Layout under ``pk = VS#{id}``: ``META`` (tenant, name, metadata, description, created_at, expires_after_days,
last_active_at, expires_at; ``gsi1pk = VSTORES#{tenant}`` for listing), one ``FILE#{file_id}`` row per file
(status, last_error, attributes, chunking strategy, usage_bytes, chunk count, the index segment's key and
version) and one ``BATCH#{id}`` row per file batch (its file ids). ``file_counts`` and a batch's status are
computed from the file rows when read, so they can never drift from them. Every row carries ``expires_at``.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, Literal

from pydantic_core import from_json, to_json

from engine.storage.files import RawTable

__all__ = ["StoreFileRow", "StoreRow", "VectorStoreRepository", "get_vector_store_repository"]

_META = "META"

StoreRow = dict[str, Any]
StoreFileRow = dict[str, Any]


def _pk(store_id: str) -> dict[str, str]:
    return {"S": f"VS#{store_id}"}


def _json(value: Any) -> dict[str, str]:
    return {"S": to_json(value).decode()}


class VectorStoreRepository(RawTable):
    """Vector stores of one tenant each; another tenant's store reads as absent."""

    # --- stores ------------------------------------------------------------------------------------------------

    def put_store(self, row: StoreRow) -> None:
        item = {
            "pk": _pk(row["id"]),
            "sk": {"S": _META},
            "tenant": {"S": row["tenant"]},
            "doc": _json({k: v for k, v in row.items() if k not in ("tenant", "expires_at")}),
            "expires_at": {"N": str(row["expires_at"])},
            "gsi1pk": {"S": f"VSTORES#{row['tenant']}"},
            "gsi1sk": {"S": row["id"]},
        }
        self.client.put_item(TableName=self.table_name, Item=item)

    @staticmethod
    def _store(item: dict[str, Any]) -> StoreRow:
        return {
            **from_json(item["doc"]["S"]),
            "tenant": item["tenant"]["S"],
            "expires_at": int(item["expires_at"]["N"]),
        }

    def get_store(self, tenant: str, store_id: str) -> StoreRow | None:
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": _pk(store_id), "sk": {"S": _META}}, ConsistentRead=True
        ).get("Item")
        if item is None or item.get("tenant", {}).get("S") != tenant:
            return None
        return self._store(item)

    def list_stores(
        self, tenant: str, *, limit: int, order: Literal["asc", "desc"], after: str | None, before: str | None
    ) -> tuple[list[StoreRow], bool]:
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"VSTORES#{tenant}"}},
            "ScanIndexForward": order == "asc",
        }
        cursor, sign = (after, ">" if order == "asc" else "<") if after else (before, "<" if order == "asc" else ">")
        if cursor:
            kwargs["KeyConditionExpression"] += f" AND gsi1sk {sign} :c"
            kwargs["ExpressionAttributeValues"][":c"] = {"S": cursor}
        rows: list[StoreRow] = []
        while True:
            result = self.client.query(TableName=self.table_name, **kwargs)
            rows.extend(self._store(item) for item in result.get("Items", []))
            if len(rows) > limit or "LastEvaluatedKey" not in result:
                break
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]
        return rows[:limit], len(rows) > limit

    def delete_store(self, store_id: str) -> None:
        rows = self._query_raw(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": _pk(store_id)})
        self.batch_write(deletes=[{"pk": row["pk"]["S"], "sk": row["sk"]["S"]} for row in rows])

    # --- files of a store --------------------------------------------------------------------------------------

    def put_file(self, store_id: str, row: StoreFileRow, expires_at: int) -> None:
        item = {
            "pk": _pk(store_id),
            "sk": {"S": f"FILE#{row['id']}"},
            "doc": _json(row),
            "status": {"S": row["status"]},
            "expires_at": {"N": str(expires_at)},
        }
        self.client.put_item(TableName=self.table_name, Item=item)

    def update_file(self, store_id: str, file_id: str, changes: dict[str, Any]) -> StoreFileRow | None:
        """Merge ``changes`` into the file's row (read-modify-write; one writer per file at a time: the ingest
        execution, or an attributes update). None when the file is not (or no longer) in the store."""
        row = self.get_file(store_id, file_id)
        if row is None:
            return None
        row.update(changes)
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": _pk(store_id), "sk": {"S": f"FILE#{file_id}"}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        from botocore.exceptions import ClientError

        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={**item, "doc": _json(row), "status": {"S": row["status"]}},
                ConditionExpression="attribute_exists(pk)",  # a file deleted meanwhile stays deleted
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return row

    def get_file(self, store_id: str, file_id: str) -> StoreFileRow | None:
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": _pk(store_id), "sk": {"S": f"FILE#{file_id}"}}, ConsistentRead=True
        ).get("Item")
        return dict(from_json(item["doc"]["S"])) if item else None

    def files(self, store_id: str) -> list[StoreFileRow]:
        """Every file of the store, oldest first (file ids are time-ordered)."""
        rows = self._query_raw(
            KeyConditionExpression="pk = :p AND begins_with(sk, :f)",
            ExpressionAttributeValues={":p": _pk(store_id), ":f": {"S": "FILE#"}},
        )
        files = [dict(from_json(row["doc"]["S"])) for row in rows]
        return sorted(files, key=lambda f: (f["created_at"], f["id"]))

    def delete_file(self, store_id: str, file_id: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key={"pk": _pk(store_id), "sk": {"S": f"FILE#{file_id}"}})

    # --- file batches ------------------------------------------------------------------------------------------

    def put_batch(self, store_id: str, batch: dict[str, Any], expires_at: int) -> None:
        item = {"pk": _pk(store_id), "sk": {"S": f"BATCH#{batch['id']}"}, "doc": _json(batch)}
        item["expires_at"] = {"N": str(expires_at)}
        self.client.put_item(TableName=self.table_name, Item=item)

    def get_batch(self, store_id: str, batch_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": _pk(store_id), "sk": {"S": f"BATCH#{batch_id}"}}, ConsistentRead=True
        ).get("Item")
        return dict(from_json(item["doc"]["S"])) if item else None

    def now(self) -> int:
        return int(time.time())


@lru_cache(maxsize=1)
def get_vector_store_repository() -> VectorStoreRepository:
    from engine.settings import get_settings

    settings = get_settings()
    return VectorStoreRepository(table_name=settings.table_name, retention_days=settings.retention_days)
