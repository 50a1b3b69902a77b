"""The Responses API engine (the Lambda layer): everything the handlers call.

Handlers import from here; the modules below are split by concern — ``models`` (API shapes), ``conversation``
(input → messages), ``providers`` (the model), ``tools``, ``streaming`` (events), ``storage`` (DynamoDB),
``errors``, and ``service`` (the logic each endpoint runs).

Names load on first use (PEP 562): a handler that needs one function, such as the authorizer, does not pay
for the pydantic models the others need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import APIError, InvalidRequestError, NotFoundError
    from .models.response import Response, ResponseDeleted, ResponseItemList, ResponseList
    from .service import cancel_response, delete_response, get_response, list_input_items, list_responses
    from .tenancy import tenant_from_authorizer

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
    "cancel_response": ".service",
    "delete_response": ".service",
    "get_response": ".service",
    "list_input_items": ".service",
    "list_responses": ".service",
    "tenant_from_authorizer": ".tenancy",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(_HOME[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
