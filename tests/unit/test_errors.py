"""errors: one envelope shape, and pydantic locations turned into OpenAI's ``param`` paths."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.errors import (
    APIError,
    InvalidRequestError,
    NotFoundError,
    PreviousResponseNotFoundError,
    from_validation_errors,
)
from engine.models.request import ResponseCreateParams


def test_envelope_always_has_four_keys():
    assert APIError("boom").to_envelope() == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
    }
    assert NotFoundError("gone", param="response_id").status_code == 404
    err = PreviousResponseNotFoundError("resp_1")
    assert (err.status_code, err.code, err.param) == (400, "previous_response_not_found", "previous_response_id")


def _error_for(body: dict[str, object]) -> InvalidRequestError:
    with pytest.raises(ValidationError) as caught:
        ResponseCreateParams.model_validate(body)
    return from_validation_errors(caught.value.errors())


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": "m", "temperature": 3}, "temperature", "invalid_value"),
        ({"model": "m", "previous_response_id": 1}, "previous_response_id", "invalid_type"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content", "invalid_type"),
        ({"model": "m", "input": [{"role": "x", "content": "a"}]}, "input[0].role", "invalid_value"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
         "input[0].content[0].text", "missing_required_parameter"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id",
         "missing_required_parameter"),
    ],
)  # fmt: skip
def test_param_path_names_the_deepest_offending_field(body: dict[str, object], param: str, code: str):
    err = _error_for(body)
    assert (err.param, err.code) == (param, code)
    assert err.message and "Traceback" not in err.message
