"""Bedrock failures as ``ProviderError``.

Errors: ThrottlingException/ServiceQuotaExceededException → ``rate_limit_exceeded``; ValidationException,
AccessDeniedException, ResourceNotFoundException → ``invalid_prompt``; ModelTimeout/ServiceUnavailable/
InternalServer/ModelStreamError/ModelError/ModelNotReady exceptions (before or inside the stream) → ``server_error``;
timeouts → ``server_error`` "timed out"; anything else → ``server_error`` with the exception's type name only.
"""

from __future__ import annotations

from engine.observability import logger
from engine.providers.base import ProviderError

__all__ = ["ERRORS", "client_error", "invalid", "provider_error"]

# Bedrock error code -> (ResponseError code, HTTP status when the error arrived inside the stream)
ERRORS: dict[str, tuple[str, int]] = {
    "ThrottlingException": ("rate_limit_exceeded", 429),
    "ServiceQuotaExceededException": ("rate_limit_exceeded", 429),
    "ValidationException": ("invalid_prompt", 400),
    "AccessDeniedException": ("invalid_prompt", 403),
    "ResourceNotFoundException": ("invalid_prompt", 404),
    "ModelTimeoutException": ("server_error", 408),
    "ServiceUnavailableException": ("server_error", 503),
    "InternalServerException": ("server_error", 500),
    "ModelStreamErrorException": ("server_error", 424),
    "ModelErrorException": ("server_error", 424),
    "ModelNotReadyException": ("server_error", 429),
}


def invalid(message: str) -> ProviderError:
    """A request Bedrock cannot take: the caller's 400."""
    return ProviderError(message, code="invalid_prompt", status=400)


def client_error(code: str, message: str, status: int | None) -> ProviderError:
    """A Bedrock error code (and HTTP status, when it came before the stream) as the error the client sees."""
    kind, default_status = ERRORS.get(code, ("", 0))
    status = status if status and status >= 400 else default_status or None
    if not kind and status == 429:
        kind = "rate_limit_exceeded"
    elif not kind:
        kind = "invalid_prompt" if status and status < 500 else "server_error"
    if code == "AccessDeniedException":
        # The raw message names the role and account; the log keeps it, the client gets the actionable part.
        logger.warning("bedrock access denied", extra={"error": message})
        message = (
            "this deployment's IAM role may not invoke the model, or model access is not enabled in the "
            "Amazon Bedrock console for this region"
        )
    detail = f": {message}" if message else "."
    return ProviderError(f"Amazon Bedrock returned {code or 'an error'}{detail}", code=kind, status=status)


def provider_error(exc: BaseException) -> ProviderError:
    """Any failure of a Bedrock call as a ``ProviderError`` (the message never carries a traceback)."""
    if isinstance(exc, ProviderError):
        return exc
    from botocore import exceptions as boto
    from urllib3 import exceptions as http

    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        code = code[:1].upper() + code[1:]  # in-stream exceptions are named like "throttlingException"
        status = (
            None
            if isinstance(exc, boto.EventStreamError)
            else exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
        return client_error(code, str(error.get("Message") or ""), status)
    if isinstance(exc, boto.ParamValidationError):
        return invalid(f"Amazon Bedrock cannot take this request: {exc.kwargs.get('report', exc)}")
    if isinstance(exc, (boto.ReadTimeoutError, boto.ConnectTimeoutError, http.TimeoutError, TimeoutError)):
        return ProviderError("Amazon Bedrock timed out.", code="server_error")
    if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return ProviderError("Amazon Bedrock: no AWS credentials were found for this deployment.")
    if isinstance(exc, boto.NoRegionError):
        return ProviderError("Amazon Bedrock: no AWS region is configured (set BEDROCK_REGION).")
    logger.warning("bedrock stream broke", extra={"error": repr(exc)})
    return ProviderError(f"Amazon Bedrock connection failed: {type(exc).__name__}.")
