"""A fault in a turn → the failed response's error, and a failed foreground create → OpenAI's HTTP answer."""

from __future__ import annotations

import pytest

from engine.errors import PreviousResponseNotFoundError
from engine.models.response import ResponseError
from engine.providers import ProviderError
from engine.responses.failures import failure_of, http_failure

INVALID = "invalid_request_error"
RATE = "rate_limit_exceeded"


def _answer(exc: BaseException) -> tuple[int, dict[str, object], dict[str, str]]:
    failure = failure_of(exc)
    error = ResponseError(code=failure.code, message=failure.message, type=failure.type)
    error._retry_after = failure.retry_after
    return http_failure(error, "resp_1")


@pytest.mark.parametrize(
    ("exc", "status", "code", "kind"),
    [
        (ProviderError("no such model", code="invalid_prompt", status=404), 404, "model_not_found", INVALID),
        (ProviderError("slow", code=RATE, status=429, retry_after=6.5), 429, RATE, "requests"),
        (ProviderError("too long", code="context_length", status=400), 400, "context_length", INVALID),
        (ProviderError("IAM says no", code="invalid_prompt", status=403), 500, "server_error", "server_error"),
        (ProviderError("exploded", status=503), 500, "server_error", "server_error"),
        (ProviderError("Upstream model timed out."), 500, "server_error", "server_error"),
        (PreviousResponseNotFoundError("resp_gone"), 400, "previous_response_not_found", INVALID),
    ],
)  # fmt: skip
def test_status_class_and_code_survive(exc: BaseException, status: int, code: str, kind: str):
    answered, envelope, headers = _answer(exc)
    assert answered == status
    assert envelope == {"error": {"message": str(exc), "type": kind, "param": None, "code": code}}
    assert headers["x-response-id"] == "resp_1"
    assert headers.get("retry-after") == ("7" if status == 429 else None)


def test_any_other_exception_is_a_server_error_that_names_no_internals():
    failure = failure_of(KeyError("secret_internal_field"))
    assert (failure.code, failure.type) == ("server_error", "server_error")
    assert "secret_internal_field" not in failure.message and failure.message
