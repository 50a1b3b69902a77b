"""Values too large for a DynamoDB item (400 KB): conversation items, background jobs and stream events are
stored under one attribute name as JSON text inline, gzipped when that is what makes them fit, else as an
object in the S3 bucket that the row points at. Shared by responses and conversations.

``item`` / ``item_gz`` / ``item_blob`` (and ``job…``, ``event…``): exactly one of the three is on a row.
"""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

from pydantic_core import from_json, to_json

from engine.errors import PayloadTooLargeError
from engine.storage.blobs import BlobStore
from engine.storage.table import Row

__all__ = ["BLOB_ATTRIBUTES", "INLINE_LIMIT", "ItemCodec"]

# DynamoDB's item limit is 400 KB including attribute names; keep headroom for the keys and metadata.
INLINE_LIMIT = 350_000
BLOB_ATTRIBUTES = ("item_blob", "job_blob", "event_blob")


class ItemCodec:
    """JSON values ⇄ row attributes; the large ones through the items bucket (when the stack has one)."""

    def __init__(self, bucket: str) -> None:
        self.blobs = BlobStore(bucket) if bucket else None

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=8, thread_name_prefix="blobs")

    def check(self, items: list[dict[str, Any]]) -> None:
        """Raise ``PayloadTooLargeError`` for an item that cannot be stored (only without a bucket)."""
        if self.blobs is not None:
            return
        for item in items:
            raw = to_json(item)
            if len(raw) > INLINE_LIMIT:
                self._packed(raw)

    def _packed(self, raw: bytes) -> bytes:
        packed = gzip.compress(raw, compresslevel=6)
        if len(packed) > INLINE_LIMIT and self.blobs is None:
            raise PayloadTooLargeError(
                f"An input item is too large to store ({len(raw)} bytes, {len(packed)} compressed; the limit is "
                f"{INLINE_LIMIT} without a bucket for large items). Split it, or send it with store=false.",
                param="input",
                code="item_too_large",
            )
        return packed

    def pack(self, name: str, raw: bytes, blob_key: str) -> Row:
        """The attribute holding ``raw`` (JSON) as ``name``; a large value is uploaded first, as ``blob_key``."""
        if len(raw) <= INLINE_LIMIT:
            return {name: raw.decode()}
        packed = self._packed(raw)
        if len(packed) <= INLINE_LIMIT:
            return {f"{name}_gz": packed}
        assert self.blobs is not None
        self.blobs.put(blob_key, packed)
        return {f"{name}_blob": blob_key}

    def unpack(self, name: str, row: Row) -> str | bytes:
        """The JSON text (or bytes) of ``name`` on ``row``."""
        if name in row:
            return str(row[name])
        if f"{name}_gz" in row:
            return gzip.decompress(row[f"{name}_gz"])
        if self.blobs is None:
            raise RuntimeError("a stored value is in the items bucket, but FILES_BUCKET is not set")
        return gzip.decompress(self.blobs.get(str(row[f"{name}_blob"])))

    def attrs(self, item: dict[str, Any], blob_key: str) -> Row:
        return self.pack("item", to_json(item), blob_key)

    def decode(self, row: Row) -> dict[str, Any]:
        return dict(from_json(self.unpack("item", row)))

    def decode_all(self, rows: list[Row]) -> list[dict[str, Any]]:
        """Items of ``rows`` in order; objects in the bucket are fetched in parallel."""
        if sum(1 for row in rows if "item_blob" in row) <= 1:
            return [self.decode(row) for row in rows]
        return list(self._pool.map(self.decode, rows))

    def decode_texts(self, name: str, rows: list[Row]) -> list[str]:
        """The text of ``name`` on each row (events), objects in the bucket fetched in parallel."""

        def text(row: Row) -> str:
            value = self.unpack(name, row)
            return value.decode() if isinstance(value, bytes) else value

        if sum(1 for row in rows if f"{name}_blob" in row) <= 1:
            return [text(row) for row in rows]
        return list(self._pool.map(text, rows))

    @staticmethod
    def blob_keys(rows: list[Row]) -> list[str]:
        return [str(row[name]) for row in rows for name in BLOB_ATTRIBUTES if name in row]

    def delete_blobs(self, rows: list[Row]) -> None:
        keys = self.blob_keys(rows)
        if keys and self.blobs is not None:
            self.blobs.delete(keys)
