"""The OpenAPI 3.1 document of this API (``GET /v1/openapi.json``), generated from the engine's pydantic models.

Request bodies are the models the handlers validate with (``ResponseCreateParams``, the conversation params);
answers are the models they dump; query strings are described by small models of their own here, with the
bounds the handlers enforce. ``tests/unit/test_openapi.py`` checks that the paths are exactly the template's
routes, so the document cannot drift from what is deployed. The fuzzer (``make fuzz``) reads it too.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from engine.models.compaction import CompactedResponse, ResponseCompactParams
from engine.models.conversations import (
    ConversationCreateParams,
    ConversationDeleted,
    ConversationItemList,
    ConversationItemsCreateParams,
    ConversationResource,
    ConversationUpdateParams,
)
from engine.models.files import (
    FileBatchCreateParams,
    FileDeleted,
    FileObject,
    ObjectList,
    SearchResultsPage,
    VectorStore,
    VectorStoreCreateParams,
    VectorStoreDeleted,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileCreateParams,
    VectorStoreFileDeleted,
    VectorStoreFileUpdateParams,
    VectorStoreSearchParams,
    VectorStoreUpdateParams,
)
from engine.models.request import ResponseCreateParams
from engine.models.response import Response, ResponseDeleted, ResponseItemList, ResponseList

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"


class ErrorObject(BaseModel):
    """OpenAI's error object: all four keys are always present."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(BaseModel):
    error: ErrorObject


class InputTokensParams(ResponseCreateParams):
    """``POST /v1/responses/input_tokens``: a create's body, every field optional (``model`` included)."""

    model: str = Field(default="input-tokens", min_length=1)


class InputTokens(BaseModel):
    object: Literal["response.input_tokens"] = "response.input_tokens"
    input_tokens: int


class ConversationItem(BaseModel):
    """One stored conversation item (an input or output item with its ``id``)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrieveQuery(_Query):
    stream: bool = False
    starting_after: int | None = Field(default=None, ge=0)
    include_obfuscation: bool | None = None


class InputItemsQuery(_Query):
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = Field(default=None, min_length=1)


class ListResponsesQuery(_Query):
    limit: int = Field(default=20, ge=1, le=100)
    after: str | None = Field(default=None, min_length=1)
    before: str | None = Field(default=None, min_length=1)


class ListFilesQuery(_Query):
    limit: int = Field(default=10000, ge=1, le=10000)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = Field(default=None, min_length=1)
    purpose: str | None = Field(default=None, min_length=1)


class ListVectorStoresQuery(ListResponsesQuery):
    order: Literal["asc", "desc"] = "desc"


class ListVectorStoreFilesQuery(ListVectorStoresQuery):
    filter: Literal["in_progress", "completed", "failed", "cancelled"] | None = None


class FileUploadForm(BaseModel):
    """``POST /v1/files``: a ``multipart/form-data`` upload (the openai SDK's)."""

    file: bytes
    purpose: str


# (method, path, summary, body model, query model, answer model)
_Operation = tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None, type[BaseModel]]
_OPERATIONS: list[_Operation] = [
    ("post", "/responses", "Create a response (JSON, or SSE when stream is true)", ResponseCreateParams, None,
     Response),
    ("get", "/responses", "List stored responses, newest first", None, ListResponsesQuery, ResponseList),
    ("get", "/responses/{response_id}", "Retrieve a response (or replay a background one's events)", None,
     RetrieveQuery, Response),
    ("delete", "/responses/{response_id}", "Delete a response and its items", None, None, ResponseDeleted),
    ("post", "/responses/{response_id}/cancel", "Cancel a background response", None, None, Response),
    ("get", "/responses/{response_id}/input_items", "List a response's input items", None, InputItemsQuery,
     ResponseItemList),
    ("post", "/responses/input_tokens", "Count the input tokens a create would send", InputTokensParams, None,
     InputTokens),
    ("post", "/conversations", "Create a conversation", ConversationCreateParams, None, ConversationResource),
    ("get", "/conversations/{conversation_id}", "Retrieve a conversation", None, None, ConversationResource),
    ("post", "/conversations/{conversation_id}", "Update a conversation's metadata", ConversationUpdateParams, None,
     ConversationResource),
    ("delete", "/conversations/{conversation_id}", "Delete a conversation", None, None, ConversationDeleted),
    ("get", "/conversations/{conversation_id}/items", "List a conversation's items", None, InputItemsQuery,
     ConversationItemList),
    ("post", "/conversations/{conversation_id}/items", "Add items to a conversation", ConversationItemsCreateParams,
     None, ConversationItemList),
    ("get", "/conversations/{conversation_id}/items/{item_id}", "Retrieve a conversation item", None, None,
     ConversationItem),
    ("delete", "/conversations/{conversation_id}/items/{item_id}", "Delete a conversation item", None, None,
     ConversationResource),
    ("post", "/responses/compact", "Compact a context into a sealed compaction item", ResponseCompactParams, None,
     CompactedResponse),
    ("post", "/files", "Upload a file", FileUploadForm, None, FileObject),
    ("get", "/files", "List files", None, ListFilesQuery, ObjectList[FileObject]),
    ("get", "/files/{file_id}", "Retrieve a file", None, None, FileObject),
    ("delete", "/files/{file_id}", "Delete a file", None, None, FileDeleted),
    ("get", "/files/{file_id}/content", "A file's content", None, None, BaseModel),
    ("post", "/vector_stores", "Create a vector store", VectorStoreCreateParams, None, VectorStore),
    ("get", "/vector_stores", "List vector stores", None, ListVectorStoresQuery, ObjectList[VectorStore]),
    ("get", "/vector_stores/{vector_store_id}", "Retrieve a vector store", None, None, VectorStore),
    ("post", "/vector_stores/{vector_store_id}", "Update a vector store", VectorStoreUpdateParams, None,
     VectorStore),
    ("delete", "/vector_stores/{vector_store_id}", "Delete a vector store", None, None, VectorStoreDeleted),
    ("post", "/vector_stores/{vector_store_id}/search", "Search a vector store", VectorStoreSearchParams, None,
     SearchResultsPage),
    ("post", "/vector_stores/{vector_store_id}/files", "Add a file to a vector store", VectorStoreFileCreateParams,
     None, VectorStoreFile),
    ("get", "/vector_stores/{vector_store_id}/files", "List a vector store's files", None,
     ListVectorStoreFilesQuery, ObjectList[VectorStoreFile]),
    ("get", "/vector_stores/{vector_store_id}/files/{file_id}", "Retrieve a vector store file", None, None,
     VectorStoreFile),
    ("post", "/vector_stores/{vector_store_id}/files/{file_id}", "Update a vector store file's attributes",
     VectorStoreFileUpdateParams, None, VectorStoreFile),
    ("delete", "/vector_stores/{vector_store_id}/files/{file_id}", "Remove a file from a vector store", None, None,
     VectorStoreFileDeleted),
    ("post", "/vector_stores/{vector_store_id}/file_batches", "Add files in a batch", FileBatchCreateParams, None,
     VectorStoreFileBatch),
    ("get", "/vector_stores/{vector_store_id}/file_batches/{batch_id}", "Retrieve a file batch", None, None,
     VectorStoreFileBatch),
    ("get", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files", "List a file batch's files", None,
     ListVectorStoreFilesQuery, ObjectList[VectorStoreFile]),
    ("get", "/openapi.json", "This document", None, None, BaseModel),
]  # fmt: skip
# bodies that are not JSON
_MEDIA_TYPES: dict[type[BaseModel], str] = {FileUploadForm: "multipart/form-data"}


def _parameters(path: str, query: dict[str, Any] | None) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for part in path.split("/")
        if part.startswith("{")
    ]
    if query is not None:
        params += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in query["properties"].items()
        ]
    return params


def _errors(*statuses: int) -> dict[str, Any]:
    body = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorEnvelope")}}}
    return {str(s): {"description": "OpenAI's error envelope", "content": body} for s in statuses}


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    name = str(schema["$ref"]).rsplit("/", 1)[-1]
    return dict(schemas[name])


@functools.cache
def openapi_document(server_url: str = "/v1") -> dict[str, Any]:
    """The whole document (cached: the models do not change while a process runs)."""
    models: set[type[BaseModel]] = {ErrorEnvelope}
    for _, _, _, body, query, answer in _OPERATIONS:
        models.update(m for m in (body, query, answer) if m is not None and m is not BaseModel)
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if m.__name__.endswith(("Params", "Query", "Form")) else "serialization") for m in models
    ]
    refs, top = models_json_schema(sorted(modes, key=lambda pair: pair[0].__name__), ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    # pydantic names a model differently where its validation and serialization schemas differ
    ref = {model: dict(refs[(model, mode)]) for model, mode in modes}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, query, answer in _OPERATIONS:
        operation: dict[str, Any] = {
            "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "summary": summary,
            "parameters": _parameters(path, _resolve(ref[query], schemas) if query else None),
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {"schema": {"type": "object"} if answer is BaseModel else ref[answer]}
                    },
                },
                **_errors(400, 401, 404, 429),
            },
        }
        if body is not None:
            operation["requestBody"] = {
                "required": body is not InputTokensParams,
                "content": {_MEDIA_TYPES.get(body, "application/json"): {"schema": ref[body]}},
            }
        if path == "/responses" and method == "post":
            operation["responses"]["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Responses API",
            "version": "1",
            "description": "A self-hosted, OpenAI-compatible Responses API. Errors are OpenAI's envelope.",
        },
        "servers": [{"url": server_url}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
