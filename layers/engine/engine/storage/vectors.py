"""Where a vector store's chunks and vectors live: index segments in S3, Amazon S3 Vectors when deployed, and
the Step Functions execution that ingests a file.

A *segment* is one file's ingested chunks in one store: ``tenants/{tenant}/vector_stores/{store}/{file}.seg``,
gzip'd JSON ``{"texts": [...], "dims": d, "vectors": <base64 float32, row-major>}``. Keyword search (BM25) reads
the store's segments (cached per warm process by key and ETag); so does the local vector index. With
``VECTOR_INDEX=s3vectors`` the vectors are also put in an S3 Vectors index (one per deployment, partitioned by
the ``store`` metadata key) and nearest neighbours come from ``QueryVectors``.
"""

from __future__ import annotations

import base64
import gzip
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json, to_json

from engine.storage.files import get_objects

if TYPE_CHECKING:
    from mypy_boto3_s3vectors.client import S3VectorsClient
    from mypy_boto3_stepfunctions.client import SFNClient

__all__ = [
    "S3VectorsStore",
    "Segment",
    "get_s3vectors",
    "load_segment",
    "save_segment",
    "segment_key",
    "start_ingestion",
]


def segment_key(tenant: str, store_id: str, file_id: str) -> str:
    return f"tenants/{tenant}/vector_stores/{store_id}/{file_id}.seg"


class Segment:
    """One file's chunks in one store: their texts and a float32 matrix of their embeddings."""

    __slots__ = ("texts", "vectors")

    def __init__(self, texts: list[str], vectors: Any) -> None:
        self.texts = texts
        self.vectors = vectors  # numpy array, shape (len(texts), dims)

    def encode(self) -> bytes:
        import numpy as np

        matrix = np.asarray(self.vectors, dtype=np.float32)
        doc = {
            "texts": self.texts,
            "dims": int(matrix.shape[1]) if matrix.ndim == 2 else 0,
            "vectors": base64.b64encode(matrix.tobytes()).decode(),
        }
        return gzip.compress(to_json(doc), compresslevel=5)

    @classmethod
    def decode(cls, raw: bytes) -> Segment:
        import numpy as np

        doc = from_json(gzip.decompress(raw))
        dims = int(doc["dims"]) or 1
        vectors = np.frombuffer(base64.b64decode(doc["vectors"]), dtype=np.float32).reshape(-1, dims)
        return cls(list(doc["texts"]), vectors)


def save_segment(key: str, segment: Segment) -> str:
    """Write the segment; returns its version (the object's ETag)."""
    return get_objects().put(key, segment.encode(), "application/gzip")


@lru_cache(maxsize=4096)
def _cached_segment(key: str, version: str) -> Segment:
    return Segment.decode(get_objects().get(key))


def load_segment(key: str, version: str) -> Segment:
    """The segment, read once per warm process and version (a re-ingested file has a new version)."""
    return _cached_segment(key, version)


class S3VectorsStore:
    """Amazon S3 Vectors: ``PutVectors`` / ``DeleteVectors`` / ``QueryVectors`` on the deployment's index.

    Vector keys are ``{store}/{file}/{n}``; filterable metadata ``store`` and ``file`` (a query is always
    filtered by its store; attribute filters are applied by the search itself, since attributes can be updated
    without re-indexing).
    """

    def __init__(self, bucket: str, index: str) -> None:
        self.bucket, self.index = bucket, index

    @cached_property
    def _client(self) -> S3VectorsClient:
        import boto3

        return boto3.client("s3vectors")

    def put(self, store_id: str, file_id: str, vectors: Any) -> None:
        rows: list[Any] = [
            {
                "key": f"{store_id}/{file_id}/{n}",
                "data": {"float32": [float(x) for x in vector]},
                "metadata": {"store": store_id, "file": file_id, "chunk": n},
            }
            for n, vector in enumerate(vectors)
        ]
        for start in range(0, len(rows), 500):  # PutVectors takes at most 500 vectors per call
            self._client.put_vectors(
                vectorBucketName=self.bucket,
                indexName=self.index,
                vectors=rows[start : start + 500],
            )

    def delete(self, store_id: str, file_id: str, count: int) -> None:
        keys = [f"{store_id}/{file_id}/{n}" for n in range(count)]
        for start in range(0, len(keys), 500):
            self._client.delete_vectors(
                vectorBucketName=self.bucket, indexName=self.index, keys=keys[start : start + 500]
            )

    def query(self, store_id: str, vector: list[float], top_k: int) -> list[tuple[str, int, float]]:
        """``(file_id, chunk number, similarity)`` of the nearest chunks of the store (cosine index: 1 - distance)."""
        result = self._client.query_vectors(
            vectorBucketName=self.bucket,
            indexName=self.index,
            queryVector={"float32": vector},
            topK=min(top_k, 100),
            filter={"store": {"$eq": store_id}},
            returnMetadata=True,
            returnDistance=True,
        )
        out: list[tuple[str, int, float]] = []
        for row in result.get("vectors", []):
            meta: dict[str, Any] = dict(row.get("metadata") or {})
            out.append((str(meta["file"]), int(meta["chunk"]), 1.0 - float(row.get("distance", 1.0))))
        return out


@lru_cache(maxsize=1)
def get_s3vectors() -> S3VectorsStore | None:
    """The S3 Vectors index when ``VECTOR_INDEX=s3vectors``, else None (the local in-process index)."""
    from engine.settings import get_settings

    settings = get_settings()
    if settings.vector_index != "s3vectors":
        return None
    return S3VectorsStore(settings.vector_bucket, settings.vector_index_name)


@lru_cache(maxsize=1)
def _sfn() -> SFNClient:
    from engine.storage import clients

    return clients.stepfunctions()


def start_ingestion(job: dict[str, str], name: str) -> None:
    """Start the ingest state machine for one file of one store (``job``: tenant, vector_store_id, file_id)."""
    from engine.settings import get_settings

    _sfn().start_execution(
        stateMachineArn=get_settings().ingest_state_machine_arn, name=name, input=to_json(job).decode()
    )
