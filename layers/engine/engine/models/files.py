"""Files and Vector Stores: request bodies and the objects ``/v1/files`` and ``/v1/vector_stores`` return,
shaped as the openai SDK's ``FileObject``, ``VectorStore``, ``VectorStoreFile``, ``VectorStoreFileBatch`` and
``VectorStoreSearchResponse``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.models.shared import Metadata

__all__ = [
    "AttributeValue",
    "ChunkingStrategy",
    "ComparisonFilter",
    "CompoundFilter",
    "ExpiresAfter",
    "FileBatchCreateParams",
    "FileDeleted",
    "FileObject",
    "Filter",
    "RankingOptions",
    "StaticChunking",
    "VectorStore",
    "VectorStoreCreateParams",
    "VectorStoreDeleted",
    "VectorStoreFile",
    "VectorStoreFileBatch",
    "VectorStoreFileCreateParams",
    "VectorStoreFileUpdateParams",
    "VectorStoreSearchParams",
    "VectorStoreUpdateParams",
]

AttributeValue = str | float | bool
# OpenAI: at most 16 attributes; keys up to 64 characters, string values up to 512.
Attributes = Annotated[dict[Annotated[str, Field(max_length=64)], AttributeValue], Field(max_length=16)]


class _Model(BaseModel):
    # Validators and serializers are built at a model's first use, not at import: the functions of the create path
    # import these for the file_search tool, which most requests never use (~16 ms of their cold start), and the
    # files / vector store functions each use a few of them.
    model_config = ConfigDict(defer_build=True)


class _Params(_Model):
    model_config = ConfigDict(strict=True, extra="forbid")


class ObjectList[T](_Model):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


# --- files --------------------------------------------------------------------------------------------------


class FileObject(_Model):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(_Model):
    id: str
    object: Literal["file"] = "file"
    deleted: Literal[True] = True


# --- chunking, filters, ranking ---------------------------------------------------------------------------------


class StaticChunkingConfig(_Params):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)


class StaticChunking(_Params):
    type: Literal["static"] = "static"
    static: StaticChunkingConfig


class AutoChunking(_Params):
    type: Literal["auto"] = "auto"


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


class ComparisonFilter(_Params):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str = Field(min_length=1)
    value: AttributeValue | list[str | float]


class CompoundFilter(_Params):
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter] = Field(min_length=1)


Filter = ComparisonFilter | CompoundFilter


class HybridSearch(_Params):
    embedding_weight: float = Field(ge=0)
    text_weight: float = Field(ge=0)


class RankingOptions(_Params):
    ranker: Literal["none", "auto", "default-2024-11-15", "default_2024_08_21"] | None = None
    score_threshold: float | None = Field(default=None, ge=0, le=1)
    hybrid_search: HybridSearch | None = None


# --- vector stores ----------------------------------------------------------------------------------------------


class ExpiresAfter(_Params):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreateParams(_Params):
    name: str | None = Field(default=None, max_length=256)
    file_ids: list[str] | None = Field(default=None, max_length=500)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None
    description: str | None = Field(default=None, max_length=512)


class VectorStoreUpdateParams(_Params):
    name: str | None = Field(default=None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class FileCounts(_Model):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(_Model):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str | None
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None
    metadata: dict[str, str] | None = None
    description: str | None = None


class VectorStoreDeleted(_Model):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: Literal[True] = True


class VectorStoreFileCreateParams(_Params):
    file_id: str = Field(min_length=1)
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None


class VectorStoreFileUpdateParams(_Params):
    attributes: Attributes | None


class FileBatchCreateParams(_Params):
    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    files: list[VectorStoreFileCreateParams] | None = Field(default=None, min_length=1, max_length=500)
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None


class LastError(_Model):
    code: Literal["server_error", "unsupported_file", "invalid_file", "rate_limit_exceeded"]
    message: str


class VectorStoreFile(_Model):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    usage_bytes: int = 0
    last_error: LastError | None = None
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None


class VectorStoreFileDeleted(_Model):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: Literal[True] = True


class VectorStoreFileBatch(_Model):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class VectorStoreSearchParams(_Params):
    query: str | list[str]
    filters: Filter | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False


class SearchContent(_Model):
    type: Literal["text"] = "text"
    text: str


class SearchResult(_Model):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, AttributeValue] | None = None
    content: list[SearchContent]


class SearchResultsPage(_Model):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None
