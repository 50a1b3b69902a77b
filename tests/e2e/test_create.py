"""POST /v1/responses through the official openai client against the local stack and the scripted model."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import UpstreamLog


def test_create_with_string_input_answers_and_echoes_every_field(client: openai.OpenAI, upstream: UpstreamLog):
    response = client.responses.create(
        model="scripted-model",
        input="hello",
        instructions="be brief",
        metadata={"team": "a"},
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=64,
    )
    assert response.status == "completed"
    assert response.output_text == "roles=system,user; last=hello"
    assert response.model == "scripted-model"
    assert response.instructions == "be brief"
    assert response.metadata == {"team": "a"}
    assert (response.temperature, response.top_p, response.max_output_tokens) == (0.3, 0.9, 64)
    assert response.usage is not None and response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    sent = upstream.requests()[-1]["body"]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["max_tokens"] == 64
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert upstream.requests()[-1]["headers"]["authorization"] == "Bearer sk-scripted"


def test_create_with_item_list_maps_roles_and_content(client: openai.OpenAI, upstream: UpstreamLog):
    items: list[Any] = [
        {"role": "developer", "content": "dev rules"},
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        {"role": "user", "content": "second"},
    ]
    response = client.responses.create(model="m", input=items)
    assert response.output_text == "roles=system,user,assistant,user; last=second"
    assert upstream.last_messages() == [
        {"role": "system", "content": "dev rules"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]


def test_response_object_has_every_required_field(client: openai.OpenAI):
    response = client.responses.create(model="m", input="hi")
    data = response.model_dump()
    required = [
        "id", "object", "created_at", "status", "completed_at", "error", "incomplete_details", "instructions",
        "max_output_tokens", "max_tool_calls", "model", "output", "parallel_tool_calls", "previous_response_id",
        "reasoning", "service_tier", "store", "background", "temperature", "top_p", "text", "tool_choice",
        "tools", "truncation", "usage", "user", "metadata", "top_logprobs", "safety_identifier", "prompt_cache_key",
    ]  # fmt: skip
    missing = [key for key in required if key not in data]
    assert missing == []
    assert data["object"] == "response" and data["id"].startswith("resp_")
    assert data["metadata"] == {} and data["tools"] == [] and data["text"]["format"] == {"type": "text"}
    message = response.output[0]
    assert message.type == "message" and message.id.startswith("msg_") and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []


def test_reasoning_content_becomes_a_reasoning_item_before_the_message(client: openai.OpenAI):
    response = client.responses.create(model="m", input="REASON tides\nREPLY high tide at noon")
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.content is not None and reasoning.content[0].text == "thinking about tides"
    assert response.output_text == "high tide at noon"


def test_max_output_tokens_reached_is_incomplete(client: openai.OpenAI):
    response = client.responses.create(model="m", input="LENGTH\nREPLY cut short", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert client.responses.retrieve(response.id).status == "incomplete"


@pytest.mark.parametrize("directive", ["FAIL 503", "FAIL 500", "FAIL_MIDSTREAM", "HANG"])
def test_upstream_failure_gives_a_stored_failed_response(client: openai.OpenAI, directive: str):
    # Given an upstream that errors, breaks mid-stream or never answers (the stack's timeout is 2 s)
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="m", input=directive)
    # Then the client gets OpenAI's 500 envelope (SDKs raise and retry), and the failed response is stored
    error = caught.value
    assert error.status_code == 500 and error.code == "server_error" and error.type == "server_error"
    stored = client.responses.retrieve(error.response.headers["x-response-id"])
    assert stored.status == "failed" and stored.error is not None and stored.error.code == "server_error"
    assert stored.error.message and stored.error.message in error.message
    assert stored.model_dump()["error"]["type"] == "server_error"


def test_upstream_rate_limit_maps_to_rate_limit_code(client: openai.OpenAI):
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model="m", input="FAIL 429")
    assert caught.value.code == "rate_limit_exceeded"
    stored = client.responses.retrieve(caught.value.response.headers["x-response-id"])
    assert stored.status == "failed" and stored.error is not None and stored.error.code == "rate_limit_exceeded"


def test_store_false_is_returned_but_not_retrievable_nor_chainable(client: openai.OpenAI):
    response = client.responses.create(model="m", input="hi", store=False)
    assert response.status == "completed" and response.model_dump()["store"] is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input="again", previous_response_id=response.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_overhead_header_is_reported(client: openai.OpenAI):
    raw = client.responses.with_raw_response.create(model="m", input="hi")
    assert float(raw.headers["x-overhead-ms"]) >= 0
