"""streaming: event order, sequence numbers and snapshots, checked by the openai SDK's own accumulator."""

from __future__ import annotations

from typing import Any

from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent as SDKStreamEvent
from pydantic import TypeAdapter

from engine.models.items import ResponseOutputMessage
from engine.models.response import Response
from engine.providers.base import ToolCallDelta
from engine.streaming import ResponseStream, sse_encode

_SDK_EVENT: TypeAdapter[Any] = TypeAdapter(SDKStreamEvent)


def _new() -> ResponseStream:
    return ResponseStream(Response(id="resp_test", created_at=1, model="m"))


def _through_sdk(events: list[Any]) -> Any:
    """Validate every event against the SDK's types and feed the SDK's stream accumulator; return its result."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=[], text_format=omit)
    for event in events:
        data = event.model_dump(mode="json")
        _SDK_EVENT.validate_python(data)  # strict schema check (raises on a wrong or missing field)
        state.handle_event(construct_type(type_=SDKStreamEvent, value=data))  # type: ignore[arg-type]
    return state._completed_response


def test_text_reasoning_and_tool_calls_in_one_response():
    stream = _new()
    events = stream.start()
    events += stream.reasoning("think ")
    events += stream.reasoning("hard")
    events += stream.text("Hel")
    events += stream.text("lo")
    events += stream.tool_call(ToolCallDelta(index=0, call_id="call_a", name="get", arguments=""))
    events += stream.tool_call(ToolCallDelta(index=1, call_id="call_b", name="put", arguments='{"k":'))
    events += stream.tool_call(ToolCallDelta(index=0, arguments='{"q":1}'))
    events += stream.tool_call(ToolCallDelta(index=1, arguments="2}"))
    events += stream.finish(None)
    events.append(stream.terminal())
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = _through_sdk(events)
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert final.output[0].content[0].text == "think hard"
    assert final.output_text == "Hello"
    assert [(c.call_id, c.name, c.arguments) for c in final.output[2:]] == [
        ("call_a", "get", '{"q":1}'),
        ("call_b", "put", '{"k":2}'),
    ]
    assert stream.response.status == "completed" and stream.response.completed_at is not None


def test_failure_closes_items_and_ends_failed():
    stream = _new()
    events = stream.start() + stream.text("partial") + stream.fail("server_error", "upstream broke")
    events.append(stream.terminal())
    types = [e.type for e in events]
    assert types[-4:] == ["response.content_part.done", "response.output_item.done", "error", "response.failed"]
    message = stream.response.output[0]
    assert isinstance(message, ResponseOutputMessage) and message.status == "incomplete"
    assert stream.response.error is not None and stream.response.error.message == "upstream broke"
    for event in events:
        _SDK_EVENT.validate_python(event.model_dump(mode="json"))


def test_incomplete_sets_reason_and_no_completed_at():
    stream = _new()
    events = stream.start() + stream.text("cut") + stream.finish(None, "max_output_tokens")
    terminal = stream.terminal()
    assert terminal.type == "response.incomplete"
    assert stream.response.incomplete_details is not None
    assert stream.response.completed_at is None
    assert [e.type for e in events].count("response.output_item.done") == 1


def test_sse_frame_is_single_line_and_named():
    [created, _] = _new().start()
    frame = sse_encode(created)
    head, data, end = frame.split(b"\n", 2)
    assert head == b"event: response.created" and data.startswith(b"data: {") and end == b"\n"
