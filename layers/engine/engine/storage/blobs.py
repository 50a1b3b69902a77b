"""Large items in the stack's S3 bucket (``FilesBucket``, shared with uploaded files under their own prefix):
private, encrypted, expired by a lifecycle rule.

Objects are gzipped JSON under ``responses/{response id}/…`` (the bucket's lifecycle rule expires them after the
stack's retention, as DynamoDB's TTL expires the rows that point at them) and ``conversations/{id}/…`` (kept
while the conversation lives: every renewal of the conversation copies them onto themselves, which restarts their
lifecycle clock). Deleting a response or conversation deletes its objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING

from engine.storage import clients

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["BlobStore"]


class BlobStore:
    """Objects of one bucket, by key."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @cached_property
    def client(self) -> S3Client:
        return clients.s3()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/gzip")

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": key} for key in keys]
        for start in range(0, len(batch), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch[start : start + 1000]})  # type: ignore[typeddict-item]

    def renew(self, keys: Iterable[str]) -> None:
        """Restart the lifecycle clock of objects (a copy onto itself is a new object to S3's lifecycle rules)."""
        for key in keys:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                ContentType="application/gzip",
            )
