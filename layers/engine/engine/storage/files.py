"""Uploaded files: their bytes in the stack's S3 bucket, their records in the table.

Objects live under ``tenants/{tenant}/files/{file_id}`` (the tenant is part of every key, so a policy or an
audit can scope by it); the bucket is encrypted, blocks public access and expires objects after the retention
period (a lifecycle rule in template.yaml). Records: ``pk = FILE#{id}``, ``sk = META`` (tenant, filename, bytes,
purpose, created_at, expires_at; ``gsi1pk = FILES#{tenant}`` for listing newest first), and one
``sk = VS#{vector_store_id}`` link row per vector store holding the file, so deleting the file finds every copy
of its chunks. Reads treat another tenant's or an expired record as absent.
"""

from __future__ import annotations

import time
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Literal

from engine.storage.table import DynamoTable

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["FileRecord", "FileStore", "RawTable", "S3Objects", "file_key", "get_file_store", "get_objects"]

_META = "META"

FileRecord = dict[str, Any]
"""``{"id", "filename", "bytes", "purpose", "created_at", "expires_at", "tenant"}``."""


def file_key(tenant: str, file_id: str) -> str:
    return f"tenants/{tenant}/files/{file_id}"


class S3Objects:
    """The stack's bucket: put, get and delete whole objects (files and index segments)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @cached_property
    def _s3(self) -> S3Client:
        from engine.storage import clients

        return clients.s3()

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """Store ``body``; returns the object's ETag (a version marker for caches)."""
        result = self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return str(result.get("ETag", "")).strip('"')

    def get(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> None:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", []) if "Key" in obj]
            if keys:
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})  # type: ignore[typeddict-item]


class RawTable(DynamoTable):
    """The shared table with rows in DynamoDB's typed form (``{"S": …}``), as these repositories write them."""

    def _query_raw(self, **kwargs: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            result = self.client.query(TableName=self.table_name, ConsistentRead=True, **kwargs)
            rows.extend(result.get("Items", []))
            if "LastEvaluatedKey" not in result:
                return rows
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]


class FileStore(RawTable):
    """File records of one tenant each."""

    def create(self, record: FileRecord) -> None:
        item: dict[str, Any] = {
            "pk": {"S": f"FILE#{record['id']}"},
            "sk": {"S": _META},
            "tenant": {"S": record["tenant"]},
            "filename": {"S": record["filename"]},
            "bytes": {"N": str(record["bytes"])},
            "purpose": {"S": record["purpose"]},
            "created_at": {"N": str(record["created_at"])},
            "expires_at": {"N": str(record["expires_at"])},
            "gsi1pk": {"S": f"FILES#{record['tenant']}"},
            "gsi1sk": {"S": record["id"]},
        }
        self.client.put_item(TableName=self.table_name, Item=item)

    @staticmethod
    def _record(row: dict[str, Any]) -> FileRecord:
        return {
            "id": row["pk"]["S"].removeprefix("FILE#"),
            "tenant": row["tenant"]["S"],
            "filename": row["filename"]["S"],
            "bytes": int(row["bytes"]["N"]),
            "purpose": row["purpose"]["S"],
            "created_at": int(row["created_at"]["N"]),
            "expires_at": int(row["expires_at"]["N"]),
        }

    def get_record(self, tenant: str, file_id: str) -> FileRecord | None:
        row = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": f"FILE#{file_id}"}, "sk": {"S": _META}}, ConsistentRead=True
        ).get("Item")
        if row is None or row.get("tenant", {}).get("S") != tenant:
            return None
        if int(row["expires_at"]["N"]) <= int(time.time()):
            return None
        return self._record(row)

    def list_page(
        self, tenant: str, *, limit: int, order: Literal["asc", "desc"], after: str | None, purpose: str | None
    ) -> tuple[list[FileRecord], bool]:
        """One page, ids ascending or descending (ids are time-ordered), after the cursor ``after``."""
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"FILES#{tenant}"}, ":now": {"N": str(int(time.time()))}},
            "FilterExpression": "expires_at > :now",
            "ScanIndexForward": order == "asc",
        }
        if after:
            kwargs["KeyConditionExpression"] += " AND gsi1sk " + (">" if order == "asc" else "<") + " :a"
            kwargs["ExpressionAttributeValues"][":a"] = {"S": after}
        if purpose:
            kwargs["FilterExpression"] += " AND purpose = :purpose"
            kwargs["ExpressionAttributeValues"][":purpose"] = {"S": purpose}
        records: list[FileRecord] = []
        while True:
            result = self.client.query(TableName=self.table_name, **kwargs)
            records.extend(self._record(row) for row in result.get("Items", []))
            if len(records) > limit or "LastEvaluatedKey" not in result:
                break
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]
        return records[:limit], len(records) > limit

    def link(self, file_id: str, vector_store_id: str, expires_at: int) -> None:
        """Note that a vector store holds the file (so deleting the file can remove its chunks there)."""
        item = {
            "pk": {"S": f"FILE#{file_id}"},
            "sk": {"S": f"VS#{vector_store_id}"},
            "expires_at": {"N": str(expires_at)},
        }
        self.client.put_item(TableName=self.table_name, Item=item)

    def unlink(self, file_id: str, vector_store_id: str) -> None:
        self.client.delete_item(
            TableName=self.table_name, Key={"pk": {"S": f"FILE#{file_id}"}, "sk": {"S": f"VS#{vector_store_id}"}}
        )

    def stores_holding(self, file_id: str) -> list[str]:
        rows = self._query_raw(
            KeyConditionExpression="pk = :p AND begins_with(sk, :vs)",
            ExpressionAttributeValues={":p": {"S": f"FILE#{file_id}"}, ":vs": {"S": "VS#"}},
        )
        return [row["sk"]["S"].removeprefix("VS#") for row in rows]

    def delete_record(self, file_id: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key={"pk": {"S": f"FILE#{file_id}"}, "sk": {"S": _META}})


@lru_cache(maxsize=1)
def get_file_store() -> FileStore:
    from engine.settings import get_settings

    settings = get_settings()
    return FileStore(table_name=settings.table_name, retention_days=settings.retention_days)


@lru_cache(maxsize=1)
def get_objects() -> S3Objects:
    from engine.settings import get_settings

    return S3Objects(get_settings().files_bucket)
