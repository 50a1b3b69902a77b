"""Which faults a background step may retry, and how often.

``StepRetryable`` is the error the state machine's ``Retry`` names: the worker raises it only when retrying
cannot repeat or lose anything, i.e. when nothing of the step has been committed since the state a retry starts
from (the job's loop state, saved at every turn boundary). That is a DynamoDB throttle, 5xx or timeout before
the step wrote anything, or an upstream 429, 5xx, timeout or refused connection before the turn produced any
event. A turn retried ``background_step_retries`` times ends the response ``failed`` with the upstream's
reason instead (the state machine would otherwise mark it failed without one).
"""

from __future__ import annotations

from typing import Any

from engine.providers import ProviderError
from engine.settings import get_settings

__all__ = ["StepRetryable", "is_retryable", "retry"]

_DYNAMODB_RETRYABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
}


class StepRetryable(Exception):
    """A step failed on a transient fault before committing anything: the state machine runs it again."""


def is_retryable(exc: BaseException) -> bool:
    """A transient fault: upstream 429/5xx/timeout/connection, or DynamoDB throttling/5xx/timeout."""
    if isinstance(exc, ProviderError):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - botocore ships with the layer
        return False
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code")) in _DYNAMODB_RETRYABLE
    return isinstance(exc, BotoCoreError)


def retry(job: dict[str, Any], exc: BaseException) -> bool:
    """Count one more retry of the current turn in ``job``; False once the budget is spent or ``exc`` is not
    transient."""
    if not is_retryable(exc):
        return False
    retries = int(job.get("retries", 0))
    if retries >= get_settings().background_step_retries:
        return False
    job["retries"] = retries + 1
    return True
