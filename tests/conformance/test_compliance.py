"""The Open Responses compliance suite (openresponses.org/compliance), re-implemented as pytest cases.

Each case sends the suite's request shape (with a scripted-model directive where the suite relies on a real model's
judgement), validates the Response (non-streamed body, or the terminal event's snapshot) and, when streamed, every
event, then runs the suite's semantic checks: status ``completed``, non-empty ``output``, the expected item type.
Where the scripted model lets us, we also check what reached the model (the upstream request log).
"""

from __future__ import annotations

from typing import Any

import httpx
import openresponses_types as ort
import pytest

from tests.conformance.sse import Capture, check_framing, post_stream
from tests.conformance.validators import validate_event, validate_response
from tests.conftest import UpstreamLog

MODEL = "gpt-4o-mini"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
WEATHER_QUESTION = 'What\'s the weather like in San Francisco?\nCALL get_weather {"location": "San Francisco, CA"}'
# a 2x2 PNG (red, green, blue, white)
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR4nGP4z8DAAMIM/4EAAB/uBfsL2WiLAAAAAElFTkSuQmCC"
)


def _user(content: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": content}


def _create(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post("/responses", json={"model": MODEL, **body})
    assert answer.status_code == 200, f"HTTP {answer.status_code}: {answer.text}"
    response = answer.json()
    validate_response(response)
    return dict(response)


def _stream(http: httpx.Client, body: dict[str, Any]) -> tuple[Capture, dict[str, Any]]:
    capture = post_stream(http, {"model": MODEL, **body})
    check_framing(capture)
    assert capture.events, "no streaming events received"
    for event in capture.data:
        validate_event(event)
    final = capture.terminal()
    validate_response(final)
    return capture, final


def _semantic(response: dict[str, Any], *, output_type: str | None = None) -> None:
    assert response["status"] == "completed", response["status"]
    assert response["output"], "response has no output items"
    if output_type is not None:
        assert output_type in [item["type"] for item in response["output"]], response["output"]


def _message_text(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def test_basic_text_response(http: httpx.Client):
    response = _create(http, {"input": [_user("Say hello in exactly 3 words.\nREPLY Hello there, friend.")]})
    _semantic(response, output_type="message")
    assert _message_text(response) == "Hello there, friend."


def test_streaming_response(http: httpx.Client):
    capture, final = _stream(http, {"input": [_user("Count from 1 to 5.\nREPLY 1 2 3 4 5")]})
    _semantic(final, output_type="message")
    deltas = "".join(event["delta"] for event in capture.data if event["type"] == "response.output_text.delta")
    assert deltas == _message_text(final) == "1 2 3 4 5"


def test_system_prompt_as_system_message(http: httpx.Client, upstream: UpstreamLog):
    pirate = "You are a pirate. Always respond in pirate speak."
    response = _create(http, {"input": [{"type": "message", "role": "system", "content": pirate}, _user("Say hello.")]})
    _semantic(response)
    assert upstream.last_messages()[0] == {"role": "system", "content": pirate}
    assert _message_text(response) == "roles=system,user; last=Say hello."


def test_system_prompt_as_instructions(http: httpx.Client, upstream: UpstreamLog):
    pirate = "You are a pirate. Always respond in pirate speak."
    response = _create(http, {"instructions": pirate, "input": [_user("Say hello.")]})
    _semantic(response)
    assert response["instructions"] == pirate
    assert upstream.last_messages() == [
        {"role": "system", "content": pirate},
        {"role": "user", "content": "Say hello."},
    ]


def test_tool_calling(http: httpx.Client, upstream: UpstreamLog):
    response = _create(http, {"input": [_user(WEATHER_QUESTION)], "tools": [WEATHER_TOOL]})
    assert response["output"], "response has no output items"
    _semantic(response, output_type="function_call")
    call = next(item for item in response["output"] if item["type"] == "function_call")
    assert call["name"] == "get_weather" and call["call_id"] and call["status"] == "completed"
    assert call["arguments"] == '{"location": "San Francisco, CA"}'
    offered = upstream.requests()[-1]["body"]["tools"]
    assert [tool["function"]["name"] for tool in offered] == ["get_weather"]


def test_tool_calling_streaming(http: httpx.Client):
    capture, final = _stream(http, {"input": [_user(WEATHER_QUESTION)], "tools": [WEATHER_TOOL]})
    _semantic(final, output_type="function_call")
    calls = [
        (event["type"], event.get("item", {}).get("type"))
        for event in capture.data
        if event["type"].startswith(("response.output_item.", "response.function_call_arguments."))
    ]
    # added -> arguments delta (one or more) -> arguments done -> item done, for the function_call item
    assert calls[0] == ("response.output_item.added", "function_call")
    assert calls[-2:] == [
        ("response.function_call_arguments.done", None),
        ("response.output_item.done", "function_call"),
    ]
    assert {kind for kind, _ in calls[1:-2]} == {"response.function_call_arguments.delta"}
    arguments = "".join(e["delta"] for e in capture.data if e["type"] == "response.function_call_arguments.delta")
    done = capture.first("response.function_call_arguments.done").data
    assert arguments == done["arguments"] == final["output"][0]["arguments"]


def test_image_input_reaches_the_model_as_an_image_part(http: httpx.Client, upstream: UpstreamLog):
    content = [
        {"type": "input_text", "text": "What do you see in this image? Answer in one sentence."},
        {"type": "input_image", "image_url": PNG},
    ]
    response = _create(http, {"input": [_user(content)]})
    _semantic(response)
    sent = upstream.last_messages()[-1]
    assert sent["role"] == "user" and isinstance(sent["content"], list), sent
    images = [part for part in sent["content"] if part.get("type") == "image_url"]
    assert len(images) == 1 and images[0]["image_url"]["url"] == PNG, sent["content"]
    texts = [part["text"] for part in sent["content"] if part.get("type") == "text"]
    assert texts == ["What do you see in this image? Answer in one sentence."]


def test_multi_turn_history_in_input(http: httpx.Client, upstream: UpstreamLog):
    history = [
        _user("My name is Alice."),
        {"type": "message", "role": "assistant", "content": "Hello Alice! Nice to meet you. How can I help you today?"},
        _user("What is my name?"),
    ]
    response = _create(http, {"input": history})
    _semantic(response)
    assert [m["role"] for m in upstream.last_messages()] == ["user", "assistant", "user"]


def test_multi_turn_with_previous_response_id(http: httpx.Client, upstream: UpstreamLog):
    first = _create(http, {"input": [_user("My name is Alice.\nREPLY Hello Alice!")]})
    second = _create(http, {"input": [_user("What is my name?")], "previous_response_id": first["id"]})
    _semantic(second)
    assert second["previous_response_id"] == first["id"]
    assert upstream.last_messages() == [
        {"role": "user", "content": "My name is Alice.\nREPLY Hello Alice!"},
        {"role": "assistant", "content": "Hello Alice!"},
        {"role": "user", "content": "What is my name?"},
    ]


def test_allowed_tools_is_a_hard_constraint(http: httpx.Client, upstream: UpstreamLog):
    """Open Responses, `allowed_tools`: "any tool call to a tool not listed MUST be rejected or suppressed by the
    server" — offering fewer tools upstream is not enough when the model calls another one anyway."""
    clock = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
    allowed = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_time"}]}
    for stream in (False, True):
        body = {"input": [_user(WEATHER_QUESTION)], "tools": [WEATHER_TOOL, clock], "tool_choice": allowed}
        response = _stream(http, body)[1] if stream else _create(http, body)
        called = [item["name"] for item in response["output"] if item["type"] == "function_call"]
        assert "get_weather" not in called, f"a call to a tool outside allowed_tools came back (stream={stream})"


@pytest.mark.parametrize("phase", ["commentary", "final_answer"])
def test_assistant_message_phase_is_accepted(http: httpx.Client, phase: str):
    history = [
        _user("Plan, then answer."),
        {
            "type": "message",
            "role": "assistant",
            "phase": phase,
            "content": [{"type": "output_text", "text": "Thinking out loud.", "annotations": []}],
        },
        _user("Go on."),
    ]
    _semantic(_create(http, {"input": history}))


def test_response_output_phase_schema(http: httpx.Client):
    response = _create(http, {"input": [_user("REPLY ok")]})
    for item in response["output"]:
        if item["type"] == "message":
            assert item.get("phase") in (None, "commentary", "final_answer"), item


def test_compaction_endpoint(http: httpx.Client):
    answer = http.post("/responses/compact", json={"model": MODEL, "input": [_user("Summarise this chat.")]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "response.compaction" and isinstance(body["created_at"], int)
    assert body["output"] and body["output"][-1]["type"] == "compaction" and body["usage"]
    # the suite validates the body with its CompactResource schema (the openai SDK's CompactedResponse types
    # output as assistant items only, so its retained user messages would not pass a validating parse)
    ort.CompactResource.model_validate(body)


def test_compaction_missing_required_model(http: httpx.Client):
    answer = http.post("/responses/compact", json={"input": [_user("Summarise this chat.")]})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "model"
