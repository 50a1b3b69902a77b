"""Storage: small repository interfaces (``base``) with DynamoDB and Step Functions behind them.

``codec`` (the one attribute codec), ``table`` (client, paged queries, batch writes), ``items`` and ``blobs``
(values of any size, the large ones in S3), ``responses``, ``conversations``, ``keys``, ``prompts``,
``executions``, ``ratelimit`` (per-key request counters); ``clients`` makes the AWS clients, on first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from engine.storage.base import (
    ConversationStore,
    Executions,
    KeyStore,
    Page,
    PromptStore,
    ResponseStore,
    StoredContext,
)

if TYPE_CHECKING:
    from engine.storage.ratelimit import DynamoRequestCounter

__all__ = [
    "ConversationStore",
    "Executions",
    "KeyStore",
    "Page",
    "PromptStore",
    "ResponseStore",
    "StoredContext",
    "get_conversation_store",
    "get_executions",
    "get_key_store",
    "get_prompt_store",
    "get_request_counter",
    "get_store",
]


@lru_cache(maxsize=1)
def get_store() -> ResponseStore:
    from engine.settings import get_settings
    from engine.storage.responses import DynamoResponseStore

    settings = get_settings()
    return DynamoResponseStore(settings.table_name, settings.retention_days, settings.files_bucket)


@lru_cache(maxsize=1)
def get_conversation_store() -> ConversationStore:
    from engine.settings import get_settings
    from engine.storage.conversations import DynamoConversationStore

    settings = get_settings()
    return DynamoConversationStore(settings.table_name, settings.retention_days, settings.files_bucket)


def get_key_store(table_name: str | None = None) -> KeyStore:
    """The key records (of ``table_name``, default the settings' table: the key CLI can name another). Not
    cached: each ``Authenticator`` holds the one it was given."""
    from engine.settings import get_settings
    from engine.storage.keys import DynamoKeyStore

    return DynamoKeyStore(table_name or get_settings().table_name)


@lru_cache(maxsize=4)
def get_prompt_store(table_name: str | None = None) -> PromptStore:
    from engine.settings import get_settings
    from engine.storage.prompts import DynamoPromptStore

    return DynamoPromptStore(table_name or get_settings().table_name)


@lru_cache(maxsize=1)
def get_executions() -> Executions:
    from engine.settings import get_settings
    from engine.storage.executions import StepFunctionsExecutions

    return StepFunctionsExecutions(get_settings().state_machine_arn)


@lru_cache(maxsize=1)
def get_request_counter() -> DynamoRequestCounter:
    """Per-key request counters (the function URL's rate limit and quota, ``engine.limits``)."""
    from engine.settings import get_settings
    from engine.storage.ratelimit import DynamoRequestCounter

    return DynamoRequestCounter(get_settings().table_name)
