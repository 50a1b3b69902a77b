"""With no upstream configured, ``make serve`` answers with the built-in demo model, labelled as such."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from local.stack import running_stack


@pytest.fixture(scope="module")
def demo_client() -> Iterator[openai.OpenAI]:
    with running_stack() as base_url:
        yield openai.OpenAI(base_url=base_url, api_key="anything", max_retries=0)


def test_demo_model_says_it_is_the_demo_model(demo_client: openai.OpenAI):
    response = demo_client.responses.create(model="any-model", input="what are you?")
    assert response.status == "completed"
    assert "demo model" in response.output_text and "UPSTREAM_BASE_URL" in response.output_text
    assert "what are you?" in response.output_text


def test_demo_model_streams_chains_and_stops_at_max_output_tokens(demo_client: openai.OpenAI):
    with demo_client.responses.stream(model="m", input="first") as stream:
        first = stream.get_final_response()
    second = demo_client.responses.create(model="m", input="second", previous_response_id=first.id)
    assert "3 message(s)" in second.output_text
    short = demo_client.responses.create(model="m", input="x", max_output_tokens=16)
    assert short.status == "incomplete" and len(short.output_text.split()) == 16


def test_demo_model_calls_an_offered_tool_then_answers_its_result(demo_client: openai.OpenAI):
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["location", "unit"],
        },
    }
    first = demo_client.responses.create(model="m", input="Weather in Paris?", tools=[tool])
    message, call = first.output
    assert "demo model" in message.content[0].text  # type: ignore[union-attr,index]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"location": "demo", "unit": "c"}
    output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = demo_client.responses.create(model="m", previous_response_id=first.id, input=[output], tools=[tool])
    assert [item.type for item in second.output] == ["message"] and "demo model" in second.output_text
    none = demo_client.responses.create(model="m", input="hi", tools=[tool], tool_choice="none")
    assert [item.type for item in none.output] == ["message"]
