"""The repository interface the engine sees; nothing above this package knows it is DynamoDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from engine.models.response import Response

__all__ = ["Page", "ResponseStore", "StoredContext"]


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

    # background runs: the record is the commit point (see storage.dynamodb)

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
    ) -> bool: ...

    def events(self, response_id: str, after: int, before: int) -> list[tuple[int, str]]: ...

    def find_item(self, tenant: str, item_id: str) -> dict[str, Any] | None:
        """A stored item of the tenant's by id (for ``item_reference``), or None."""

    def cancel(
        self, tenant: str, response_id: str
    ) -> Literal["cancelled", "not_background", "finished", "missing"]: ...
