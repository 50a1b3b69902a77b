"""The Responses API engine (the Lambda layer): everything the handlers call.

Handlers import from here; the packages below are split by concern — ``api`` (the HTTP edges: the buffered
resolver helper and the streaming app), ``responses`` (what each endpoint does: create, the turn loop, input →
messages, stored responses, background runs, compaction, WebSocket mode), ``providers`` (the model), ``tools``,
``streaming`` (events), ``retrieval`` (file_search), ``storage`` (every AWS call), ``models`` (API shapes), and
``errors``.

Names load on first use (PEP 562): a handler that needs one function, such as the authorizer, does not pay
for the pydantic models the others need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from engine.coldstart import begin_init

# A Lambda function's init runs without cyclic GC until its handler is made (engine.coldstart).
begin_init()

if TYPE_CHECKING:
    from engine.api.tenancy import tenant_from_authorizer
    from engine.errors import APIError, InvalidRequestError, NotFoundError
    from engine.models.response import Response, ResponseDeleted, ResponseItemList, ResponseList
    from engine.responses.stored import cancel_response, delete_response, get_response, list_input_items, list_responses

__all__ = [
    "APIError",
    "InvalidRequestError",
    "NotFoundError",
    "Response",
    "ResponseDeleted",
    "ResponseItemList",
    "ResponseList",
    "cancel_response",
    "delete_response",
    "get_response",
    "list_input_items",
    "list_responses",
    "tenant_from_authorizer",
]

_HOME = {
    "APIError": ".errors",
    "InvalidRequestError": ".errors",
    "NotFoundError": ".errors",
    "Response": ".models.response",
    "ResponseDeleted": ".models.response",
    "ResponseItemList": ".models.response",
    "ResponseList": ".models.response",
    "cancel_response": ".responses.stored",
    "delete_response": ".responses.stored",
    "get_response": ".responses.stored",
    "list_input_items": ".responses.stored",
    "list_responses": ".responses.stored",
    "tenant_from_authorizer": ".api.tenancy",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(_HOME[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
