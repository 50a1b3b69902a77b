"""The Vector Stores API (``/v1/vector_stores``): stores, their files, file batches and search.

Adding a file records it ``in_progress`` and starts its ingestion (a Step Functions execution,
``engine.retrieval.ingest``); the API call never parses or embeds. A store with ``expires_after`` expires
``days`` after it was last active (created, searched, or given files): it then reads as ``expired`` and is gone
from search (a 404, as if deleted), and DynamoDB's TTL removes it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from engine.errors import InvalidRequestError, NotFoundError
from engine.ids import new_id
from engine.models.files import (
    FileBatchCreateParams,
    FileCounts,
    ObjectList,
    SearchContent,
    SearchResult,
    SearchResultsPage,
    VectorStore,
    VectorStoreCreateParams,
    VectorStoreDeleted,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileCreateParams,
    VectorStoreFileDeleted,
    VectorStoreSearchParams,
    VectorStoreUpdateParams,
)
from engine.retrieval.chunking import static_strategy
from engine.retrieval.records import get_record
from engine.settings import get_settings
from engine.storage.vector_stores import StoreRow, get_vector_store_repository

__all__ = [
    "add_file",
    "create_batch",
    "create_store",
    "delete_store",
    "get_batch",
    "get_store",
    "get_store_file",
    "list_batch_files",
    "list_store_files",
    "list_stores",
    "remove_file",
    "remove_file_from_store",
    "search_store",
    "search_stores",
    "update_store",
    "update_store_file",
]


def store_not_found(store_id: str, param: str = "vector_store_id") -> NotFoundError:
    return NotFoundError(f"No vector store found with id '{store_id}'.", param=param)


def _expired(row: StoreRow, now: int | None = None) -> bool:
    days = (row.get("expires_after") or {}).get("days")
    return days is not None and row["last_active_at"] + int(days) * 86_400 <= (now or int(time.time()))


def _ttl(row: StoreRow) -> int:
    """When DynamoDB may drop the store: its expiry, or the retention period after it was last active."""
    days = (row.get("expires_after") or {}).get("days")
    if days:
        return int(row["last_active_at"]) + int(days) * 86_400
    return int(row["last_active_at"]) + get_settings().retention_days * 86_400


def _live_store(tenant: str, store_id: str, param: str = "vector_store_id", *, allow_expired: bool = False) -> StoreRow:
    row = get_vector_store_repository().get_store(tenant, store_id)
    if row is None or row["expires_at"] <= int(time.time()) or (_expired(row) and not allow_expired):
        raise store_not_found(store_id, param)
    return row


def _counts(files: list[dict[str, Any]]) -> FileCounts:
    counts = FileCounts(total=len(files))
    for f in files:
        setattr(counts, f["status"], getattr(counts, f["status"]) + 1)
    return counts


def _store_object(row: StoreRow, files: list[dict[str, Any]]) -> VectorStore:
    counts = _counts(files)
    status: Literal["expired", "in_progress", "completed"] = (
        "expired" if _expired(row) else ("in_progress" if counts.in_progress else "completed")
    )
    days = (row.get("expires_after") or {}).get("days")
    return VectorStore(
        id=row["id"],
        created_at=row["created_at"],
        name=row.get("name"),
        usage_bytes=sum(int(f.get("usage_bytes", 0)) for f in files),
        file_counts=counts,
        status=status,
        expires_after=row.get("expires_after"),
        expires_at=row["last_active_at"] + int(days) * 86_400 if days else None,
        last_active_at=row["last_active_at"],
        metadata=row.get("metadata") or {},
        description=row.get("description"),
    )


def _file_object(store_id: str, row: dict[str, Any]) -> VectorStoreFile:
    return VectorStoreFile(
        id=row["id"],
        created_at=row["created_at"],
        vector_store_id=store_id,
        status=row["status"],
        usage_bytes=int(row.get("usage_bytes", 0)),
        last_error=row.get("last_error"),
        attributes=row.get("attributes") or {},
        chunking_strategy=row.get("chunking_strategy"),
    )


def _touch(row: StoreRow) -> None:
    row["last_active_at"] = int(time.time())
    row["expires_at"] = _ttl(row)
    get_vector_store_repository().put_store(row)


# --- stores ----------------------------------------------------------------------------------------------------


def create_store(tenant: str, params: VectorStoreCreateParams) -> VectorStore:
    strategy = static_strategy(params.chunking_strategy.model_dump() if params.chunking_strategy else None)
    now = int(time.time())
    row: StoreRow = {
        "id": new_id("vs"),
        "tenant": tenant,
        "name": params.name,
        "description": params.description,
        "metadata": dict(params.metadata or {}),
        "created_at": now,
        "last_active_at": now,
        "expires_after": params.expires_after.model_dump() if params.expires_after else None,
        "chunking_strategy": strategy,
    }
    row["expires_at"] = _ttl(row)
    records = [get_record(tenant, file_id, "file_ids") for file_id in params.file_ids or []]
    get_vector_store_repository().put_store(row)
    files = [_add(tenant, row, record["id"], None, strategy, record["filename"]) for record in records]
    return _store_object(row, files)


def get_store(tenant: str, store_id: str) -> VectorStore:
    row = _live_store(tenant, store_id, allow_expired=True)
    return _store_object(row, get_vector_store_repository().files(store_id))


def list_stores(
    tenant: str, *, limit: int, order: Literal["asc", "desc"], after: str | None, before: str | None
) -> ObjectList[VectorStore]:
    repo = get_vector_store_repository()
    rows, has_more = repo.list_stores(tenant, limit=limit, order=order, after=after, before=before)
    now = int(time.time())
    data = [_store_object(row, repo.files(row["id"])) for row in rows if row["expires_at"] > now]
    return ObjectList[VectorStore](
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=has_more
    )


def update_store(tenant: str, store_id: str, params: VectorStoreUpdateParams) -> VectorStore:
    row = _live_store(tenant, store_id)
    fields = params.model_fields_set
    if "name" in fields:
        row["name"] = params.name
    if "metadata" in fields:
        row["metadata"] = dict(params.metadata or {})
    if "expires_after" in fields:
        row["expires_after"] = params.expires_after.model_dump() if params.expires_after else None
    _touch(row)
    return _store_object(row, get_vector_store_repository().files(store_id))


def delete_store(tenant: str, store_id: str) -> VectorStoreDeleted:
    row = _live_store(tenant, store_id, allow_expired=True)
    repo = get_vector_store_repository()
    for f in repo.files(store_id):
        _drop_file_data(tenant, store_id, f)
    repo.delete_store(row["id"])
    return VectorStoreDeleted(id=store_id)


# --- files of a store ------------------------------------------------------------------------------------------


def _add(
    tenant: str,
    store: StoreRow,
    file_id: str,
    attributes: dict[str, Any] | None,
    strategy: dict[str, Any],
    filename: str = "",
) -> dict[str, Any]:
    from engine.storage.files import get_file_store
    from engine.storage.vectors import start_ingestion

    repo = get_vector_store_repository()
    previous = repo.get_file(store["id"], file_id)
    if previous is not None:  # added again: its old chunks go, the new ingestion replaces them
        _drop_file_data(tenant, store["id"], previous, keep_row=True)
    row: dict[str, Any] = {
        "id": file_id,
        "created_at": int(time.time()),
        "status": "in_progress",
        "usage_bytes": 0,
        "attributes": attributes or {},
        "chunking_strategy": strategy,
        "run": new_id("ing"),
        "filename": filename,  # kept with the row so search results need no file lookup
    }
    repo.put_file(store["id"], row, store["expires_at"])
    get_file_store().link(file_id, store["id"], store["expires_at"])
    start_ingestion({"tenant": tenant, "vector_store_id": store["id"], "file_id": file_id}, str(row["run"]))
    return row


def add_file(tenant: str, store_id: str, params: VectorStoreFileCreateParams) -> VectorStoreFile:
    store = _live_store(tenant, store_id)
    record = get_record(tenant, params.file_id, "file_id")
    strategy = (
        static_strategy(params.chunking_strategy.model_dump())
        if params.chunking_strategy
        else store.get("chunking_strategy") or static_strategy(None)
    )
    row = _add(tenant, store, params.file_id, params.attributes, strategy, record["filename"])
    _touch(store)
    return _file_object(store_id, row)


def _store_file(tenant: str, store_id: str, file_id: str) -> dict[str, Any]:
    _live_store(tenant, store_id, allow_expired=True)
    row = get_vector_store_repository().get_file(store_id, file_id)
    if row is None:
        raise NotFoundError(f"No file found with id '{file_id}' in vector store '{store_id}'.", param="file_id")
    return row


def get_store_file(tenant: str, store_id: str, file_id: str) -> VectorStoreFile:
    return _file_object(store_id, _store_file(tenant, store_id, file_id))


def update_store_file(tenant: str, store_id: str, file_id: str, attributes: dict[str, Any] | None) -> VectorStoreFile:
    _store_file(tenant, store_id, file_id)
    row = get_vector_store_repository().update_file(store_id, file_id, {"attributes": attributes or {}})
    if row is None:
        raise NotFoundError(f"No file found with id '{file_id}' in vector store '{store_id}'.", param="file_id")
    return _file_object(store_id, row)


def _page(
    store_id: str, rows: list[dict[str, Any]], limit: int, order: str, after: str | None, before: str | None
) -> ObjectList[VectorStoreFile]:
    rows = rows if order == "asc" else list(reversed(rows))
    ids = [r["id"] for r in rows]
    if after in ids:
        rows = rows[ids.index(after) + 1 :]
    if before in ids:
        rows = rows[: [r["id"] for r in rows].index(before)] if before in [r["id"] for r in rows] else rows
    data = [_file_object(store_id, r) for r in rows[:limit]]
    return ObjectList[VectorStoreFile](
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(rows) > limit,
    )


def list_store_files(
    tenant: str,
    store_id: str,
    *,
    limit: int,
    order: Literal["asc", "desc"],
    after: str | None,
    before: str | None,
    status: str | None,
) -> ObjectList[VectorStoreFile]:
    _live_store(tenant, store_id, allow_expired=True)
    rows = get_vector_store_repository().files(store_id)
    if status:
        rows = [r for r in rows if r["status"] == status]
    return _page(store_id, rows, limit, order, after, before)


def _drop_file_data(tenant: str, store_id: str, row: dict[str, Any], *, keep_row: bool = False) -> None:
    """The file's chunks (segment) and vectors in the store, and (unless ``keep_row``) its row and link."""
    from engine.storage.files import get_file_store, get_objects
    from engine.storage.vectors import get_s3vectors, segment_key

    index = get_s3vectors()
    if index is not None and row.get("chunks"):
        index.delete(store_id, row["id"], int(row["chunks"]))
    get_objects().delete(segment_key(tenant, store_id, row["id"]))
    if not keep_row:
        get_vector_store_repository().delete_file(store_id, row["id"])
        get_file_store().unlink(row["id"], store_id)


def remove_file_from_store(tenant: str, store_id: str, file_id: str) -> None:
    row = get_vector_store_repository().get_file(store_id, file_id)
    if row is not None:
        _drop_file_data(tenant, store_id, row)


def remove_file(tenant: str, store_id: str, file_id: str) -> VectorStoreFileDeleted:
    """Removes the file from the store (its chunks and vectors); the file itself stays."""
    row = _store_file(tenant, store_id, file_id)
    _drop_file_data(tenant, store_id, row)
    return VectorStoreFileDeleted(id=file_id)


# --- file batches ----------------------------------------------------------------------------------------------


def _batch_object(store_id: str, batch: dict[str, Any], files: list[dict[str, Any]]) -> VectorStoreFileBatch:
    members = [f for f in files if f["id"] in set(batch["file_ids"]) and f.get("run") in set(batch["runs"])]
    counts = _counts(members)
    counts.total = len(batch["file_ids"])
    status: Literal["in_progress", "completed", "cancelled", "failed"] = (
        "in_progress" if counts.in_progress else ("failed" if counts.failed == counts.total else "completed")
    )
    return VectorStoreFileBatch(
        id=batch["id"], created_at=batch["created_at"], vector_store_id=store_id, status=status, file_counts=counts
    )


def create_batch(tenant: str, store_id: str, params: FileBatchCreateParams) -> VectorStoreFileBatch:
    if (params.file_ids is None) == (params.files is None):
        raise InvalidRequestError("Give exactly one of 'file_ids' and 'files'.", param="file_ids")
    store = _live_store(tenant, store_id)
    default = (
        static_strategy(params.chunking_strategy.model_dump())
        if params.chunking_strategy
        else store.get("chunking_strategy") or static_strategy(None)
    )
    wanted: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
    for file_id in params.file_ids or []:
        wanted.append((file_id, params.attributes, default))
    for entry in params.files or []:
        strategy = static_strategy(entry.chunking_strategy.model_dump()) if entry.chunking_strategy else default
        wanted.append((entry.file_id, entry.attributes, strategy))
    names = {file_id: get_record(tenant, file_id, "file_ids")["filename"] for file_id, _, _ in wanted}
    rows = [
        _add(tenant, store, file_id, attributes, strategy, names[file_id]) for file_id, attributes, strategy in wanted
    ]
    batch = {
        "id": new_id("vsfb"),
        "created_at": int(time.time()),
        "file_ids": [r["id"] for r in rows],
        "runs": [r["run"] for r in rows],
    }
    get_vector_store_repository().put_batch(store_id, batch, store["expires_at"])
    _touch(store)
    return _batch_object(store_id, batch, rows)


def _batch(tenant: str, store_id: str, batch_id: str) -> dict[str, Any]:
    _live_store(tenant, store_id, allow_expired=True)
    batch = get_vector_store_repository().get_batch(store_id, batch_id)
    if batch is None:
        raise NotFoundError(f"No file batch found with id '{batch_id}'.", param="batch_id")
    return batch


def get_batch(tenant: str, store_id: str, batch_id: str) -> VectorStoreFileBatch:
    batch = _batch(tenant, store_id, batch_id)
    return _batch_object(store_id, batch, get_vector_store_repository().files(store_id))


def list_batch_files(
    tenant: str,
    store_id: str,
    batch_id: str,
    *,
    limit: int,
    order: Literal["asc", "desc"],
    after: str | None,
    before: str | None,
    status: str | None,
) -> ObjectList[VectorStoreFile]:
    batch = _batch(tenant, store_id, batch_id)
    runs = set(batch["runs"])
    rows = [r for r in get_vector_store_repository().files(store_id) if r.get("run") in runs]
    if status:
        rows = [r for r in rows if r["status"] == status]
    return _page(store_id, rows, limit, order, after, before)


# --- search ----------------------------------------------------------------------------------------------------


def search_stores(
    tenant: str, store_ids: list[str], params: VectorStoreSearchParams, param: str = "vector_store_id"
) -> SearchResultsPage:
    """Hybrid search over the tenant's live stores (another tenant's or an expired store is a 404)."""
    import numpy as np

    from engine.retrieval.embeddings import embed
    from engine.retrieval.search import hybrid_search, matches, store_index
    from engine.storage.files import get_file_store
    from engine.storage.vectors import get_s3vectors

    repo = get_vector_store_repository()
    stores = [_live_store(tenant, store_id, param) for store_id in store_ids]
    queries = [params.query] if isinstance(params.query, str) else list(params.query)
    queries = [q for q in queries if q.strip()]
    if not queries:
        raise InvalidRequestError("The search query is empty.", param="query")
    indexes = []
    files_by_id: dict[str, dict[str, Any]] = {}
    for store in stores:
        files = repo.files(store["id"])
        index = store_index(tenant, store["id"], files)
        allowed_files = {f["id"] for f in files if matches(params.filters, f.get("attributes"))}
        files_by_id.update({f["id"]: f for f in files})
        mask = np.fromiter((fid in allowed_files for fid in index.file_ids), dtype=bool, count=index.size)
        indexes.append((index, mask))
        if int(time.time()) - int(store["last_active_at"]) >= 60:  # activity kept to the minute: no write per search
            _touch(store)
    s3v = get_s3vectors()
    hits = hybrid_search(
        indexes,
        queries,
        embed(queries),
        max_results=params.max_num_results,
        ranking=params.ranking_options,
        vector_hits=(lambda store_id, vector, k: s3v.query(store_id, vector, k)) if s3v is not None else None,
    )
    file_store = get_file_store()
    names: dict[str, str] = {}
    data = []
    for hit in hits:
        if hit.file_id not in names:
            names[hit.file_id] = files_by_id[hit.file_id].get("filename") or ""
            if not names[hit.file_id]:  # a row written before filenames were kept with it
                record = file_store.get_record(tenant, hit.file_id)
                names[hit.file_id] = record["filename"] if record else hit.file_id
        data.append(
            SearchResult(
                file_id=hit.file_id,
                filename=names[hit.file_id],
                score=round(hit.score, 6),
                attributes=files_by_id[hit.file_id].get("attributes") or {},
                content=[SearchContent(text=hit.text)],
            )
        )
    return SearchResultsPage(search_query=queries, data=data)


def search_store(tenant: str, store_id: str, params: VectorStoreSearchParams) -> SearchResultsPage:
    return search_stores(tenant, [store_id], params)
