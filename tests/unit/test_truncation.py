"""truncation "auto": which refusals mean "too long", and which items go first."""

from __future__ import annotations

from typing import Any

import pytest

from engine.providers import ProviderError
from engine.responses.truncation import is_context_overflow, items_to_drop


@pytest.mark.parametrize(
    ("message", "code", "status", "overflow"),
    [
        ("This model's maximum context length is 8192 tokens. However, you requested 9000.", "invalid_request_error",
         400, True),
        ("anything", "context_length_exceeded", 400, True),
        ("Input is too long for requested model.", "invalid_prompt", 400, True),  # Bedrock ValidationException
        ("prompt is too long: 210000 tokens > 200000 maximum", "invalid_request_error", 400, True),
        ("Rate limit: too many tokens per minute", "rate_limit_exceeded", 429, False),
        ("The model is overloaded", "server_error", 503, False),
        ("Invalid value for 'temperature'", "invalid_request_error", 400, False),
    ],
)  # fmt: skip
def test_what_counts_as_too_long(message: str, code: str, status: int, overflow: bool):
    assert is_context_overflow(ProviderError(message, code=code, status=status)) is overflow


def _msg(role: str, words: int) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": "w " * words}]}


def _measure(items: list[dict[str, Any]]) -> int:
    return sum(len(str(item).split()) for item in items)


def test_oldest_first_a_call_with_its_output_and_the_latest_user_message_kept():
    items = [
        _msg("user", 50),
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        _msg("assistant", 5),  # an interleaved item between a call and its output
        {"type": "function_call_output", "call_id": "c1", "output": "x " * 50},
        _msg("assistant", 50),
        _msg("user", 5),
        _msg("assistant", 5),
    ]
    error = ProviderError("maximum context length is 150 tokens", code="invalid_prompt", status=400)
    dropped = items_to_drop(items, error, _measure)
    # the first user message, then the call together with its output (not the output alone)
    assert dropped == {0, 1, 3}
    assert _measure([item for i, item in enumerate(items) if i not in dropped]) <= 135
    # without a limit in the message, half of the context is the target
    halved = items_to_drop(items, ProviderError("input is too long", code="invalid_prompt"), _measure)
    assert _measure([item for i, item in enumerate(items) if i not in halved]) <= _measure(items) // 2


def test_a_call_whose_output_is_kept_keeps_its_call():
    items = [
        _msg("user", 5),
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        _msg("user", 5),
        {"type": "function_call_output", "call_id": "c1", "output": "x"},
    ]
    dropped = items_to_drop(items, ProviderError("context length exceeded", code="invalid_prompt"), _measure)
    assert dropped == {0}
