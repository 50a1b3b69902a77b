"""stream=True: the spec's event order with sequence numbers, through the SDK's stream helper and raw SSE."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from local.sse import frames
from tests.event_order import TEXT_ORDER, squash


def _raw_events(http: httpx.Client, body: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """(event name, data) pairs of one SSE answer, and whether it ended with ``data: [DONE]``."""
    events: list[tuple[str, dict[str, Any]]] = []
    done = False
    with http.stream("POST", "/responses", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for frame in frames(response.iter_lines()):
            if frame.done:
                done = True
                continue
            assert frame.event is not None, "every data line follows an event line"
            events.append((frame.event, frame.json()))
    return events, done


def _without_parsed(value: Any) -> Any:
    """The stream helper returns a ParsedResponse; its extra ``parsed`` keys are not part of the wire object."""
    if isinstance(value, dict):
        return {k: _without_parsed(v) for k, v in value.items() if k != "parsed"}
    if isinstance(value, list):
        return [_without_parsed(v) for v in value]
    return value


def test_sdk_stream_helper_consumes_text_stream(client: openai.OpenAI):
    with client.responses.stream(model="m", input="REPLY streamed words arrive one by one") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert squash(types) == TEXT_ORDER
    assert types.count("response.output_text.delta") >= 5
    assert final.status == "completed" and final.output_text == "streamed words arrive one by one"
    stored = client.responses.retrieve(final.id)
    assert stored.model_dump() == _without_parsed(final.model_dump())


def test_raw_sse_framing_sequence_numbers_and_ids(http: httpx.Client):
    events, done = _raw_events(http, {"model": "m", "input": "REPLY a b c"})
    assert done, "stream ends with data: [DONE]"
    assert [name for name, _ in events] == [data["type"] for _, data in events], "event: equals data.type"
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    lifecycle = [data["response"] for _, data in events if "response" in data]
    assert len({r["id"] for r in lifecycle}) == 1 and len({r["created_at"] for r in lifecycle}) == 1
    assert [r["status"] for r in lifecycle] == ["in_progress", "in_progress", "completed"]
    added = next(data for name, data in events if name == "response.output_item.added")
    assert added["item"]["content"] == [] and added["item"]["status"] == "in_progress"
    deltas = [data for name, data in events if name == "response.output_text.delta"]
    assert {(d["item_id"], d["output_index"], d["content_index"]) for d in deltas} == {(added["item"]["id"], 0, 0)}
    text_done = next(data for name, data in events if name == "response.output_text.done")
    assert text_done["text"] == "".join(d["delta"] for d in deltas) == "a b c"
    terminal = [name for name, _ in events if name in ("response.completed", "response.failed", "response.incomplete")]
    assert terminal == ["response.completed"]


def test_reasoning_streams_before_the_message(http: httpx.Client, client: openai.OpenAI):
    events, _ = _raw_events(http, {"model": "m", "input": "REASON depth\nREPLY answer"})
    items = [data["item"]["type"] for name, data in events if name == "response.output_item.added"]
    assert items == ["reasoning", "message"]
    reasoning = "".join(d["delta"] for n, d in events if n == "response.reasoning_text.delta")
    assert reasoning == "thinking about depth"
    with client.responses.stream(model="m", input="REASON depth\nREPLY answer") as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message"]


def test_upstream_failure_mid_stream_ends_with_response_failed(http: httpx.Client, client: openai.OpenAI):
    events, done = _raw_events(http, {"model": "m", "input": "FAIL_MIDSTREAM"})
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in names
    assert names[-2:] == ["error", "response.failed"] and done
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    # the partial message is closed, not left dangling
    assert names.count("response.output_item.added") == names.count("response.output_item.done")
    assert client.responses.retrieve(failed["id"]).status == "failed"


@pytest.mark.parametrize("directive", ["FAIL 502", "HANG"])
def test_upstream_failure_before_first_token_streams_failed(client: openai.OpenAI, directive: str):
    with client.responses.stream(model="m", input=directive) as stream:
        types = [event.type for event in stream]
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert types == ["response.created", "response.in_progress", "error", "response.failed"]


def test_incomplete_stream_ends_with_response_incomplete(http: httpx.Client):
    events, done = _raw_events(http, {"model": "m", "input": "LENGTH\nREPLY abc", "max_output_tokens": 16})
    assert events[-1][0] == "response.incomplete" and done
    assert events[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_validation_errors_come_before_the_stream(http: httpx.Client):
    response = http.post("/responses", json={"model": "m", "input": "x", "stream": True, "temperature": 9})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["param"] == "temperature"
