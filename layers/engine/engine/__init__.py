"""The Responses API engine (the Lambda layer): everything the handlers call.

Handlers import from here; the modules below are split by concern — ``models`` (API shapes), ``conversation``
(input → messages), ``providers`` (the model), ``tools``, ``streaming`` (events), ``storage`` (DynamoDB),
``errors``, and ``service`` (the logic each endpoint runs).
"""

from __future__ import annotations

from .errors import APIError, InvalidRequestError, NotFoundError
from .models.response import Response, ResponseDeleted, ResponseItemList, ResponseList
from .service import (
    cancel_response,
    delete_response,
    get_response,
    list_input_items,
    list_responses,
)
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
