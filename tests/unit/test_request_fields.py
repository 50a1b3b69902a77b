"""service_tier, prompt_cache_key, safety_identifier and logprobs on the way to each provider, and back."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters

from engine.providers.base import ChatRequest, TextDelta, Usage
from engine.providers.bedrock import converse_request
from engine.providers.bedrock.convert import ToolNames
from engine.providers.bedrock.decode import Decoder
from engine.providers.chat_completions import _events_of, chat_body


def _request(**fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)


def _valid_converse(kwargs: dict[str, Any]) -> dict[str, Any]:
    client = boto3.session.Session().client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    validate_parameters(kwargs, client.meta.service_model.operation_model("ConverseStream").input_shape)
    return kwargs


def test_chat_completions_gets_the_fields_only_when_set():
    plain = chat_body(_request())
    for key in ("service_tier", "prompt_cache_key", "safety_identifier", "logprobs", "top_logprobs"):
        assert key not in plain
    body = chat_body(
        _request(service_tier="flex", prompt_cache_key="k", safety_identifier="u1", logprobs=True, top_logprobs=3)
    )
    assert body["service_tier"] == "flex" and body["prompt_cache_key"] == "k" and body["safety_identifier"] == "u1"
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    # top_logprobs alone (without the include) asks for nothing
    assert "top_logprobs" not in chat_body(_request(top_logprobs=3))


def test_chat_completions_reports_tier_and_logprobs():
    entry = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}
    (text,) = _events_of({"choices": [{"delta": {"content": "Hi"}, "logprobs": {"content": [entry]}}]})
    assert isinstance(text, TextDelta)
    assert text.logprobs == (
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": []}],
        },
    )
    (usage,) = _events_of(
        {"choices": [], "service_tier": "flex", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    )
    assert usage == Usage(input_tokens=1, output_tokens=2, service_tier="flex")


@pytest.mark.parametrize(
    ("tier", "expected"),
    [("auto", None), (None, None), ("default", "default"), ("flex", "flex"), ("priority", "priority"),
     ("fast", "priority"), ("scale", "reserved")],
)  # fmt: skip
def test_bedrock_service_tier_is_the_nearest_converse_tier(tier: str | None, expected: str | None):
    kwargs = _valid_converse(converse_request(_request(service_tier=tier, prompt_cache_key="ignored")))
    assert kwargs.get("serviceTier") == (None if expected is None else {"type": expected})
    assert "prompt_cache_key" not in str(kwargs)


def test_bedrock_safety_identifier_goes_to_request_metadata_when_bedrock_takes_it():
    kwargs = _valid_converse(converse_request(_request(safety_identifier="user-42@example.com")))
    assert kwargs["requestMetadata"] == {"safety_identifier": "user-42@example.com"}
    assert "requestMetadata" not in converse_request(_request(safety_identifier="ünïcode|pipe"))


def test_bedrock_reports_its_tier_in_responses_terms():
    decoder = Decoder(ToolNames())
    usage = {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    (reported,) = decoder.events({"metadata": {"usage": usage, "serviceTier": {"type": "reserved"}}})
    assert reported == Usage(input_tokens=3, output_tokens=4, service_tier="scale")
    (plain,) = decoder.events({"metadata": {"usage": usage}})
    assert isinstance(plain, Usage) and plain.service_tier is None
