"""The repository interfaces the engine sees; nothing above this package knows it is DynamoDB or Step Functions.

Each is obtained through a cached factory in ``engine.storage`` (``get_store``, ``get_conversation_store``,
``get_key_store``, ``get_prompt_store``, ``get_executions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from engine.models.response import Response
    from engine.storage.keys import KeyRecord

__all__ = [
    "ConversationRecord",
    "ConversationStore",
    "Executions",
    "KeyStore",
    "Page",
    "PromptStore",
    "ResponseStore",
    "StoredContext",
]


@dataclass(slots=True)
class Page[T]:
    data: list[T]
    has_more: bool


@dataclass(slots=True)
class StoredContext:
    """What a new turn inherits from ``previous_response_id``: the chain's items, oldest first."""

    items: list[dict[str, Any]]
    ancestors: list[str]


class ResponseStore(Protocol):
    """Responses of one tenant; an expired or other tenant's response reads as absent everywhere."""

    def check_items(self, items: list[dict[str, Any]]) -> None:
        """Raise ``PayloadTooLargeError`` if an item cannot be stored."""

    def put(self, tenant: str, response: Response, input_items: list[dict[str, Any]], ancestors: list[str]) -> None: ...

    def get(self, tenant: str, response_id: str) -> Response | None: ...

    def load_context(self, tenant: str, response_id: str) -> StoredContext | None: ...

    def delete(self, tenant: str, response_id: str) -> bool: ...

    def list_input_items(
        self, tenant: str, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None: ...

    def list_responses(self, tenant: str, *, limit: int, after: str | None, before: str | None) -> Page[Response]: ...

    # background runs: the record is the commit point (see storage.responses)

    def create_background(
        self,
        tenant: str,
        response: Response,
        input_items: list[dict[str, Any]],
        ancestors: list[str],
        job: dict[str, Any],
        events: list[tuple[int, str]],
    ) -> None: ...

    def job(self, response_id: str) -> dict[str, Any] | None: ...

    def progress(self, response_id: str) -> tuple[str, int, int] | None:
        """(status, committed output items, committed events), or None when absent or expired."""

    def start_background(self, response_id: str) -> bool: ...

    def commit_progress(
        self,
        response: Response,
        *,
        n_out: int,
        new_output: list[dict[str, Any]],
        events: list[tuple[int, str]],
        next_seq: int,
        job: dict[str, Any] | None,
        save_job: bool = True,
    ) -> bool: ...

    def save_job(self, response_id: str, job: dict[str, Any]) -> None:
        """Write a running response's job; never leaves one behind a response that is no longer running."""

    def drop_job(self, response_id: str) -> None: ...

    def events(self, response_id: str, after: int, before: int) -> list[tuple[int, str]]: ...

    def find_item(self, tenant: str, item_id: str) -> dict[str, Any] | None:
        """A stored item of the tenant's by id (for ``item_reference``), or None."""

    def cancel(
        self, tenant: str, response_id: str
    ) -> Literal["cancelled", "not_background", "finished", "missing"]: ...


ConversationRecord = dict[str, Any]
"""``{"id", "metadata", "created_at"}`` of a live conversation."""


class ConversationStore(Protocol):
    """Conversations of one tenant each; an expired or other tenant's conversation reads as absent."""

    def check_items(self, items: list[dict[str, Any]]) -> None: ...

    def create(
        self, tenant: str, conversation_id: str, metadata: dict[str, str], items: list[dict[str, Any]]
    ) -> ConversationRecord: ...

    def get(self, tenant: str, conversation_id: str) -> ConversationRecord | None: ...

    def update_metadata(
        self, tenant: str, conversation_id: str, metadata: dict[str, str]
    ) -> ConversationRecord | None: ...

    def delete(self, tenant: str, conversation_id: str) -> bool: ...

    def append(self, tenant: str, conversation_id: str, items: list[dict[str, Any]]) -> bool: ...

    def items(self, tenant: str, conversation_id: str) -> list[dict[str, Any]] | None: ...

    def list_items(
        self, tenant: str, conversation_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> Page[dict[str, Any]] | None: ...

    def get_item(self, tenant: str, conversation_id: str, item_id: str) -> dict[str, Any] | None | Literal[False]: ...

    def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool | None: ...


class KeyStore(Protocol):
    """API key records, by the SHA-256 of the key."""

    def get(self, key_hash: str) -> KeyRecord | None: ...

    def add(self, record: KeyRecord) -> None: ...

    def put(self, record: KeyRecord) -> None: ...

    def list(self, tenant: str | None = None) -> list[KeyRecord]: ...

    def revoke(self, key_hash: str) -> KeyRecord | None: ...


class PromptStore(Protocol):
    """The deployment's prompt templates, versioned."""

    def meta(self, prompt_id: str) -> dict[str, Any] | None: ...

    def version(self, prompt_id: str, version: int) -> dict[str, Any] | None: ...

    def resolve(self, prompt_id: str, version: int | None) -> tuple[int, dict[str, Any]]: ...

    def create(self, prompt_id: str, template: dict[str, Any], make_default: bool = False) -> int: ...

    def set_default(self, prompt_id: str, version: int) -> None: ...

    def list_prompts(self) -> list[dict[str, Any]]: ...


class Executions(Protocol):
    """The runs of background responses."""

    def start(self, response_id: str) -> None: ...

    def stop(self, response_id: str) -> None: ...
