"""Ingestion of one file into one vector store: parse, chunk, embed, index. Run by the ingest function, one
Step Functions execution per file (never inside an API call).

The outcome is the file's row in the store: ``completed`` (with its chunk count, usage and segment version) or
``failed`` with ``last_error`` (``unsupported_file``, ``invalid_file`` or ``server_error``). A file removed
while it was being ingested stays removed: whatever this run wrote is taken back.
"""

from __future__ import annotations

import time
from typing import Any

from engine.observability import logger

__all__ = ["ingest_file"]


def _fail(store_id: str, file_id: str, run: str, code: str, message: str) -> dict[str, Any]:
    from engine.storage.vector_stores import get_vector_store_repository

    repo = get_vector_store_repository()
    current = repo.get_file(store_id, file_id)
    if current is not None and current.get("run") == run:
        repo.update_file(
            store_id, file_id, {"status": "failed", "last_error": {"code": code, "message": message[:500]}}
        )
    return {"status": "failed", "code": code}


def ingest_file(job: dict[str, Any]) -> dict[str, Any]:
    """``job``: ``{tenant, vector_store_id, file_id}``. Returns a small summary (the state machine's output)."""
    import numpy as np

    from engine.retrieval.chunking import chunk_text
    from engine.retrieval.embeddings import EmbeddingError, embed
    from engine.retrieval.files import read_record_bytes
    from engine.retrieval.parsing import UnsupportedFile, extract_text
    from engine.storage.files import get_file_store, get_objects
    from engine.storage.vector_stores import get_vector_store_repository
    from engine.storage.vectors import Segment, get_s3vectors, save_segment, segment_key

    tenant, store_id, file_id = job["tenant"], job["vector_store_id"], job["file_id"]
    repo = get_vector_store_repository()
    row = repo.get_file(store_id, file_id)
    if row is None or row["status"] != "in_progress":
        return {"status": "skipped"}
    run = str(row.get("run", ""))
    started = time.perf_counter()
    record = get_file_store().get_record(tenant, file_id)
    if record is None:
        return _fail(store_id, file_id, run, "invalid_file", "The file was deleted or has expired.")
    try:
        text = extract_text(record["filename"], read_record_bytes(record))
        static = (row.get("chunking_strategy") or {}).get("static") or {}
        chunks = chunk_text(
            text, int(static.get("max_chunk_size_tokens", 800)), int(static.get("chunk_overlap_tokens", 400))
        )
        vectors = np.asarray(embed(chunks), dtype=np.float32)
    except UnsupportedFile as exc:
        return _fail(store_id, file_id, run, exc.code, exc.message)
    except EmbeddingError as exc:
        logger.warning("embedding failed", extra={"file_id": file_id, "error": str(exc)})
        return _fail(store_id, file_id, run, "server_error", str(exc))
    except Exception as exc:  # a fault ends in a stored state that says why
        logger.exception("ingestion failed", extra={"file_id": file_id})
        return _fail(store_id, file_id, run, "server_error", f"Ingestion failed: {type(exc).__name__}")
    key = segment_key(tenant, store_id, file_id)
    version = save_segment(key, Segment(chunks, vectors))
    index = get_s3vectors()
    if index is not None:
        index.put(store_id, file_id, vectors)
    current = repo.get_file(store_id, file_id)
    changes = {
        "status": "completed",
        "chunks": len(chunks),
        "usage_bytes": sum(len(c.encode()) for c in chunks) + int(vectors.nbytes),
        "segment_version": version,
    }
    updated = repo.update_file(store_id, file_id, changes) if current and current.get("run") == run else None
    if updated is None:  # removed (or re-added) meanwhile: take back what this run wrote
        if current is None:
            get_objects().delete(key)
            if index is not None:
                index.delete(store_id, file_id, len(chunks))
        return {"status": "superseded"}
    seconds = time.perf_counter() - started
    logger.info("file ingested", extra={"file_id": file_id, "chunks": len(chunks), "seconds": round(seconds, 3)})
    return {"status": "completed", "chunks": len(chunks)}
