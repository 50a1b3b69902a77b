"""The Files API (``/v1/files``): upload (multipart), list, retrieve, delete, content.

Bytes go to the stack's bucket, the record to the table (``engine.storage.files``). Deleting a file also
removes it, with its chunks and vectors, from every vector store that holds it.
"""

from __future__ import annotations

import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Literal

from engine.errors import InvalidRequestError, PayloadTooLargeError
from engine.ids import new_id
from engine.models.files import FileDeleted, FileObject, ObjectList
from engine.retrieval.records import get_record
from engine.settings import get_settings
from engine.storage.files import FileRecord, file_key, get_file_store, get_objects

__all__ = ["delete_file", "file_content", "get_file", "list_files", "parse_upload", "upload_file"]

PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})


def _object(record: FileRecord) -> FileObject:
    retention_end = record["created_at"] + get_settings().retention_days * 86_400
    return FileObject(
        id=record["id"],
        bytes=record["bytes"],
        created_at=record["created_at"],
        filename=record["filename"],
        purpose=record["purpose"],
        expires_at=record["expires_at"] if record["expires_at"] < retention_end else None,
    )


def parse_upload(content_type: str, body: bytes) -> tuple[str, bytes, dict[str, str]]:
    """``(filename, data, other form fields)`` of a ``multipart/form-data`` body (the openai SDK's upload)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequestError("Upload a file as multipart/form-data.", param="file")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    filename, data, fields = None, b"", {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        if name == "file":
            filename, data = part.get_filename() or "upload", raw
        elif isinstance(name, str):
            fields[name] = raw.decode("utf-8", "replace")
    if filename is None:
        raise InvalidRequestError(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    return filename, data, fields


def upload_file(tenant: str, filename: str, data: bytes, fields: dict[str, str]) -> FileObject:
    """Store an uploaded file. ``fields``: ``purpose`` (required) and ``expires_after[anchor|seconds]``."""
    settings = get_settings()
    purpose = fields.get("purpose")
    if not purpose:
        raise InvalidRequestError(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose not in PURPOSES:
        raise InvalidRequestError(f"Invalid value for 'purpose': '{purpose}'.", param="purpose", code="invalid_value")
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"The file is {len(data)} bytes; this deployment accepts files up to {settings.max_upload_bytes} bytes.",
            param="file",
            code="file_too_large",
        )
    now = int(time.time())
    expires_at = now + settings.retention_days * 86_400
    seconds = fields.get("expires_after[seconds]")
    if seconds is not None:
        if fields.get("expires_after[anchor]") != "created_at" or not seconds.isdigit():
            raise InvalidRequestError(
                "expires_after needs anchor 'created_at' and seconds between 3600 and 2592000.",
                param="expires_after",
            )
        if not 3600 <= int(seconds) <= 2_592_000:
            raise InvalidRequestError("expires_after.seconds must be between 3600 and 2592000.", param="expires_after")
        expires_at = min(expires_at, now + int(seconds))
    record: FileRecord = {
        "id": new_id("file").replace("file_", "file-", 1),
        "tenant": tenant,
        "filename": filename,
        "bytes": len(data),
        "purpose": purpose,
        "created_at": now,
        "expires_at": expires_at,
    }
    get_objects().put(file_key(tenant, record["id"]), data)
    get_file_store().create(record)
    return _object(record)


def get_file(tenant: str, file_id: str) -> FileObject:
    return _object(get_record(tenant, file_id))


def list_files(
    tenant: str, *, limit: int, order: Literal["asc", "desc"], after: str | None, purpose: str | None
) -> ObjectList[FileObject]:
    records, has_more = get_file_store().list_page(tenant, limit=limit, order=order, after=after, purpose=purpose)
    data = [_object(r) for r in records]
    return ObjectList[FileObject](
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=has_more
    )


def file_content(tenant: str, file_id: str) -> bytes:
    record = get_record(tenant, file_id)
    return get_objects().get(file_key(tenant, record["id"]))


def read_record_bytes(record: FileRecord) -> bytes:
    return get_objects().get(file_key(record["tenant"], record["id"]))


def delete_file(tenant: str, file_id: str) -> FileDeleted:
    """The file, and its chunks and vectors in every vector store that holds it."""
    from engine.retrieval.vector_stores import remove_file_from_store

    record = get_record(tenant, file_id)
    store = get_file_store()
    for store_id in store.stores_holding(file_id):
        remove_file_from_store(tenant, store_id, file_id)
    get_objects().delete(file_key(tenant, record["id"]))
    store.delete_record(file_id)
    return FileDeleted(id=file_id)
