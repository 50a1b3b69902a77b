"""Request bodies: one JSON parser for every route, whatever the declared content type, with OpenAI's 400s.

Bodies are parsed by pydantic's JSON parser, which refuses what Python's ``json`` module would turn into a 500
(nesting deeper than 200 levels, integers longer than 4,300 digits, lone surrogates) and a leading BOM, as
malformed JSON. A body must be a JSON object. ``POST /v1/responses`` and ``POST /v1/responses/input_tokens``
share :func:`parse_create_params`, so both answer the same 400 for the same body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import from_json

from engine.errors import InvalidRequestError, from_validation_errors

if TYPE_CHECKING:
    from engine.models.request import ResponseCreateParams

__all__ = ["invalid_json", "parse_create_params", "parse_json_object"]

_NOT_JSON = "We could not parse the JSON body of your request. The body must be a JSON object."


def invalid_json(detail: str | None = None) -> InvalidRequestError:
    """The 400 for a body that is not JSON (``detail``: where the parser stopped)."""
    message = f"{_NOT_JSON} ({detail})" if detail else _NOT_JSON
    return InvalidRequestError(message, code="invalid_json")


def parse_json_object(raw: str | bytes | None) -> dict[str, Any]:
    """The body as a JSON object (``{}`` when empty); anything else is a 400 ``invalid_json`` / ``invalid_type``."""
    if not raw:
        return {}
    try:
        value = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise invalid_json(str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_type")
    return value


def parse_create_params(
    raw: str | bytes | None, *, defaults: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> ResponseCreateParams:
    """A create's body as :class:`ResponseCreateParams` (``defaults`` under the body's fields, ``overrides``
    over them); every problem is one OpenAI-shaped 400 naming the parameter."""
    # Here, not at module level: every buffered handler imports this module (through engine.api.rest) and most
    # never build a create's models (~19 ms of cold start).
    from engine.models.request import ResponseCreateParams

    body = {**(defaults or {}), **parse_json_object(raw), **(overrides or {})}
    try:
        return ResponseCreateParams.model_validate(body)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from None
