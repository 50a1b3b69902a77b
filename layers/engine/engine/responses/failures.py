"""How a fault inside a turn becomes a ``failed`` response, and how a failed foreground response is answered.

Any exception in a turn ends the response as ``failed`` with ``error.code``/``error.message``/``error.type``:
an upstream error keeps its class and code (``ProviderError``), anything else is a ``server_error`` whose
message names no internals (the log has the traceback). A non-streamed foreground create whose response
failed answers the error's HTTP status with OpenAI's envelope, as OpenAI does, so SDKs raise and retry:
500 ``server_error``, 404 ``model_not_found``, 429 ``rate_limit_exceeded`` with ``retry-after``, 400 with the
upstream's code. The response itself stays stored (``x-response-id`` names it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.errors import APIError
from engine.models.response import ResponseError
from engine.observability import logger
from engine.providers import ProviderError

__all__ = ["Failure", "failure_of", "http_failure"]

_INTERNAL = "The server had an error while processing the response."


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed response says: ``ResponseError`` fields, plus the upstream's Retry-After."""

    code: str
    message: str
    type: str = "server_error"
    retry_after: float | None = None


def _type_of(exc: ProviderError) -> str:
    if exc.code == "rate_limit_exceeded":
        return "requests"  # OpenAI's 429 type for request-rate limits
    client_side = exc.status is not None and 400 <= exc.status < 500 and exc.code != "server_error"
    if exc.code == "model_not_found" or client_side:
        return "invalid_request_error"
    return "server_error"


def failure_of(exc: BaseException) -> Failure:
    """The failure an exception raised inside a turn stands for (logged here, once)."""
    if isinstance(exc, ProviderError):
        logger.warning("upstream failed", extra={"code": exc.code, "status": exc.status, "error": exc.message})
        # the same classes whichever provider raised it (Bedrock's ResourceNotFound is a 404, AccessDenied a 403)
        if exc.status == 404:
            exc.code = "model_not_found"
        elif exc.status in (401, 403):
            exc.code = "server_error"
        return Failure(exc.code, exc.message, _type_of(exc), exc.retry_after)
    if isinstance(exc, APIError):  # a request a later step found invalid (a chain deleted meanwhile)
        logger.warning("a run's request failed", extra={"code": exc.code, "error": exc.message})
        return Failure(exc.code or exc.type, exc.message, exc.type)
    logger.error("a turn failed", exc_info=exc)
    return Failure("server_error", _INTERNAL)


def http_failure(error: ResponseError | None, response_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(HTTP status, envelope, headers) for a foreground non-streamed response that failed."""
    code = error.code if error else "server_error"
    message = error.message if error else _INTERNAL
    kind = (error.type if error else None) or "server_error"
    if code == "model_not_found":
        status = 404
    elif code == "rate_limit_exceeded":
        status = 429
    elif kind == "invalid_request_error":
        status = 400
    else:
        status = 500
    headers = {"x-response-id": response_id}
    retry_after = error.retry_after if error else None
    if status == 429 and retry_after is not None:
        headers["retry-after"] = str(max(0, math.ceil(retry_after)))
    envelope = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return status, envelope, headers
