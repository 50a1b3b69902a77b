"""Storage: a small repository interface (``base.ResponseStore``) with DynamoDB behind it."""

from __future__ import annotations

from functools import lru_cache

from engine.storage.base import Page, ResponseStore, StoredContext

__all__ = ["Page", "ResponseStore", "StoredContext", "get_store"]


@lru_cache(maxsize=1)
def get_store() -> ResponseStore:
    from engine.settings import get_settings
    from engine.storage.dynamodb import DynamoResponseStore

    settings = get_settings()
    return DynamoResponseStore(table_name=settings.table_name, retention_days=settings.retention_days)
