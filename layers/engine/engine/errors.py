"""One exception hierarchy for the whole engine, rendered in one place as OpenAI's error envelope.

::

    APIError                      (500 server_error)
     ├── InvalidRequestError      (400 invalid_request_error)
     │    └── PreviousResponseNotFoundError   (code previous_response_not_found)
     ├── NotFoundError            (404 invalid_request_error)
     ├── PayloadTooLargeError     (413 invalid_request_error)
     ├── RateLimitError           (429 requests, code rate_limit_exceeded: the upstream's, on buffered routes)
     └── UpstreamError            (502 upstream_error: only raised before a response exists)

Generation-time failures after a response exists are not exceptions for the client: they become a
``failed`` response (``ResponseError``) or a ``response.failed`` event.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PreviousResponseNotFoundError",
    "RateLimitError",
    "UpstreamError",
    "error_envelope",
    "from_validation_errors",
]


class APIError(Exception):
    """Base of every error the API reports; carries the HTTP status and OpenAI's envelope fields."""

    status_code: int = 500
    type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_envelope(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}`` with all four keys present."""
        return error_envelope(self.message, self.type, self.param, self.code)


class InvalidRequestError(APIError):
    status_code = 400
    type = "invalid_request_error"


class PreviousResponseNotFoundError(InvalidRequestError):
    def __init__(self, response_id: str) -> None:
        super().__init__(
            f"Previous response with id '{response_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )


class NotFoundError(APIError):
    status_code = 404
    type = "invalid_request_error"


class PayloadTooLargeError(APIError):
    status_code = 413
    type = "invalid_request_error"


class RateLimitError(APIError):
    status_code = 429
    type = "requests"


class UpstreamError(APIError):
    status_code = 502
    type = "upstream_error"


def error_envelope(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Union-branch names pydantic puts in ``loc`` (``str``, ``list[...]``) and discriminator tags that follow a list
# index (``input[0].message.role``) say nothing a client can act on; they are dropped from ``param``.
_TYPE_TOKENS = {"str", "int", "float", "bool", "dict", "list", "none", "literal"}
_UNION_TAGS = {
    "message", "function_call", "function_call_output", "reasoning", "item_reference", "input_text",
    "input_image", "input_file", "output_text", "refusal", "summary_text", "reasoning_text", "compaction",
}  # fmt: skip


def _param_parts(loc: tuple[Any, ...]) -> list[str | int]:
    parts: list[str | int] = []
    previous: Any = None
    for part in loc:
        skip = (part in ("body", "query", "path") and not parts) or (
            not isinstance(part, int)
            and ("[" in str(part) or str(part) in _TYPE_TOKENS or (isinstance(previous, int) and part in _UNION_TAGS))
        )
        if not skip:
            parts.append(part)
        previous = part
    return parts


def _param_path(loc: tuple[Any, ...]) -> str | None:
    """pydantic ``loc`` → OpenAI's ``param`` (``input[0].content``); body/query prefixes dropped."""
    out = ""
    for part in _param_parts(loc):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "json_invalid": "invalid_json",
}


def from_validation_errors(errors: list[Any]) -> InvalidRequestError:
    """Turn pydantic's error list into one clear 400: the first error, with its parameter path."""
    if not errors:
        return InvalidRequestError("Invalid request.")
    # The deepest location is the most specific complaint (the other union branches fail shallowly).
    first = max(errors, key=lambda e: len(_param_parts(tuple(e.get("loc", ())))))
    loc = tuple(first.get("loc", ()))
    param = _param_path(loc)
    kind = str(first.get("type", ""))
    code = _CODES.get(kind, "invalid_type" if kind.endswith("_type") or kind.endswith("_parsing") else "invalid_value")
    msg = str(first.get("msg", "Invalid value"))
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "extra_forbidden":
        message = f"Unknown parameter: '{param}'."
    else:
        message = f"Invalid value for '{param}': {msg[0].lower() + msg[1:] if msg else msg}." if param else msg
    return InvalidRequestError(message, param=param, code=code)
