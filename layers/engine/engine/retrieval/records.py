"""A tenant's file record, or the Files API's 404: what the Files and the Vector Stores APIs both look up (here, so
that ``vector_stores`` need not import ``files``, which imports it to delete a file from every store)."""

from __future__ import annotations

from engine.errors import NotFoundError
from engine.storage.files import FileRecord, get_file_store

__all__ = ["get_record", "not_found"]


def not_found(file_id: str, param: str = "file_id") -> NotFoundError:
    """The 404 for a file id this tenant has no file under."""
    return NotFoundError(f"No such File object: {file_id}", param=param)


def get_record(tenant: str, file_id: str, param: str = "file_id") -> FileRecord:
    """The tenant's record of ``file_id``; ``NotFoundError`` (``param``) when there is none."""
    record = get_file_store().get_record(tenant, file_id)
    if record is None:
        raise not_found(file_id, param)
    return record
