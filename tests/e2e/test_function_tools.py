"""Function tools: offered to the model, calls returned as function_call items, continued with outputs."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import UpstreamLog

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
TIME: Any = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def _message(exc: openai.APIStatusError) -> str:
    assert isinstance(exc.body, dict)
    return str(exc.body["message"])


def test_tools_are_offered_in_chat_shape_and_echoed_flat(client: openai.OpenAI, upstream: UpstreamLog):
    response = client.responses.create(model="m", input="hi", tools=[WEATHER, TIME])
    assert [t.model_dump(exclude_none=True)["name"] for t in response.tools] == ["get_weather", "get_time"]
    assert response.tools[1].type == "function" and response.model_dump()["tools"][1]["parameters"] == {
        "type": "object"
    }
    sent = upstream.requests()[-1]["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["function"]["strict"] is True and sent["tool_choice"] == "auto"


def test_parallel_calls_then_outputs_continue_the_chain(client: openai.OpenAI, upstream: UpstreamLog):
    first = client.responses.create(
        model="m",
        input='CALL get_weather {"city":"Paris"}\nCALL get_time {}',
        tools=[WEATHER, TIME],
        parallel_tool_calls=False,
    )
    assert upstream.requests()[-1]["body"]["parallel_tool_calls"] is False
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert all(str(c.id).startswith("fc_") and c.call_id and c.status == "completed" for c in calls)
    second = client.responses.create(
        model="m",
        previous_response_id=first.id,
        tools=[WEATHER, TIME],
        input=[
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"t":21}'},
            {"type": "function_call_output", "call_id": calls[1].call_id,
             "output": [{"type": "input_text", "text": "noon"}]},
        ],
    )  # fmt: skip
    assert second.output_text == 'tool results: {"t":21},noon'
    sent = upstream.last_messages()
    assert sent[1]["role"] == "assistant" and [c["id"] for c in sent[1]["tool_calls"]] == [
        calls[0].call_id,
        calls[1].call_id,
    ]
    assert [m["role"] for m in sent[2:]] == ["tool", "tool"]


def test_pairing_is_validated(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as orphan:
        client.responses.create(model="m", input=[{"type": "function_call_output", "call_id": "call_x", "output": "1"}])
    assert orphan.value.param == "input"
    assert _message(orphan.value) == "No tool call found for function call output with call_id call_x."
    first = client.responses.create(model="m", input="CALL get_time {}", tools=[TIME])
    with pytest.raises(openai.BadRequestError) as unanswered:
        client.responses.create(model="m", input="and now?", previous_response_id=first.id)
    call_id = first.output[0].call_id  # type: ignore[union-attr]
    assert _message(unanswered.value) == f"No tool output found for function call {call_id}."


@pytest.mark.parametrize(
    ("tool_choice", "offered", "sent_choice"),
    [
        ("none", ["get_weather", "get_time"], "none"),
        ("required", ["get_weather", "get_time"], "required"),
        ({"type": "function", "name": "get_time"}, ["get_weather", "get_time"],
         {"type": "function", "function": {"name": "get_time"}}),
        ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
         ["get_weather"], "required"),
    ],
)  # fmt: skip
def test_tool_choice_is_enforced(
    client: openai.OpenAI, upstream: UpstreamLog, tool_choice: Any, offered: list[str], sent_choice: Any
):
    response = client.responses.create(model="m", input="hi", tools=[WEATHER, TIME], tool_choice=tool_choice)
    sent = upstream.requests()[-1]["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == offered
    assert sent["tool_choice"] == sent_choice
    assert response.model_dump()["tool_choice"] == tool_choice


def test_tool_choice_naming_an_unknown_tool_is_400(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="m",
            input="hi",
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "nope"},
        )
    assert caught.value.param == "tool_choice"


def test_streamed_function_calls_pass_through_the_sdk(client: openai.OpenAI):
    with client.responses.stream(
        model="m",
        input='CALL get_weather {"city":"Oslo"}',
        tools=[WEATHER],
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    added = types.index("response.output_item.added")
    assert types[added + 1] == "response.function_call_arguments.delta"
    assert types.count("response.function_call_arguments.delta") >= 3
    done = types.index("response.function_call_arguments.done")
    assert types[done + 1] == "response.output_item.done" and types[-1] == "response.completed"
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    assert client.responses.retrieve(final.id).output[0].model_dump() == call.model_dump(exclude={"parsed_arguments"})
