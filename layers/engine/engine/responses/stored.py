"""Stored responses: what the retrieve, delete, input_items and list endpoints do.

Kept apart from ``create`` so these handlers do not import the turn loop, the providers or the tools.
"""

from __future__ import annotations

from typing import Literal

from engine.errors import InvalidRequestError, NotFoundError
from engine.models.response import Response, ResponseDeleted, ResponseItemList, ResponseList
from engine.observability import logger
from engine.storage import get_executions, get_store

__all__ = [
    "cancel_response",
    "delete_response",
    "get_response",
    "list_input_items",
    "list_responses",
    "not_found",
]


def not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


def get_response(tenant: str, response_id: str) -> Response:
    response = get_store().get(tenant, response_id)
    if response is None:
        raise not_found(response_id)
    return response


def delete_response(tenant: str, response_id: str) -> ResponseDeleted:
    store = get_store()
    # A background run still going is cancelled first, so its worker stops instead of writing on.
    if store.cancel(tenant, response_id) == "cancelled":
        _stop_execution(response_id)
    if not store.delete(tenant, response_id):
        raise not_found(response_id)
    return ResponseDeleted(id=response_id)


def list_input_items(
    tenant: str, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
) -> ResponseItemList:
    page = get_store().list_input_items(tenant, response_id, limit=limit, order=order, after=after)
    if page is None:
        raise not_found(response_id)
    return ResponseItemList(
        data=page.data,
        first_id=page.data[0]["id"] if page.data else None,
        last_id=page.data[-1]["id"] if page.data else None,
        has_more=page.has_more,
    )


def list_responses(tenant: str, *, limit: int, after: str | None, before: str | None) -> ResponseList:
    if after is not None and before is not None:
        raise InvalidRequestError("Use either 'after' or 'before', not both.", param="before")
    page = get_store().list_responses(tenant, limit=limit, after=after, before=before)
    return ResponseList(
        data=page.data,
        first_id=page.data[0].id if page.data else None,
        last_id=page.data[-1].id if page.data else None,
        has_more=page.has_more,
    )


def cancel_response(tenant: str, response_id: str) -> Response:
    """Cancel a queued or running background response; a finished one is returned unchanged."""
    store = get_store()
    outcome = store.cancel(tenant, response_id)
    if outcome == "missing":
        raise not_found(response_id)
    if outcome == "not_background":
        raise InvalidRequestError("Cannot cancel a synchronous response.", param="response_id")
    if outcome == "cancelled":
        _stop_execution(response_id)
    response = store.get(tenant, response_id)
    if response is None:
        raise not_found(response_id)
    return response


def _stop_execution(response_id: str) -> None:
    try:
        get_executions().stop(response_id)
    except Exception:  # best effort: the record already says cancelled, and the worker checks it
        logger.warning("StopExecution failed", extra={"response_id": response_id})
