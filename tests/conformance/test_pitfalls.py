"""responses-spec.md §6, "what implementations most often get wrong": one test (or a few) per pitfall that applies.

Features not implemented yet are written as they should pass and marked ``xfail(strict=True)``: the moment the
feature lands the test XPASSes, which fails the run until the marker is removed.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conformance.helpers import until_terminal, wait_for
from tests.conformance.paths import WEATHER, mcp_tool
from tests.conformance.sse import TERMINAL, Capture, check_framing, collect, post_stream
from tests.conformance.validators import validate_event, validate_response
from tests.conftest import UpstreamLog
from tests.event_order import TEXT_ORDER, squash

TTFT_MS = 500


def _create(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post("/responses", json={"model": "m", **body})
    assert answer.status_code == 200, answer.text
    response = answer.json()
    validate_response(response)
    return dict(response)


def _stream(http: httpx.Client, body: dict[str, Any]) -> Capture:
    capture = post_stream(http, {"model": "m", **body})
    check_framing(capture)
    for event in capture.data:
        validate_event(event)
    return capture


def _get(http: httpx.Client, response_id: str) -> dict[str, Any]:
    answer = http.get(f"/responses/{response_id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    validate_response(body)
    return dict(body)


def _chat_requests(upstream: UpstreamLog) -> list[dict[str, Any]]:
    return [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]


def _assert_openai_error(answer: httpx.Response, status: int | None = None) -> dict[str, Any]:
    if status is not None:
        assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    error = answer.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str), error
    return dict(error)


# 1 ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"input": "REPLY hi"}, id="text"),
        pytest.param({"input": 'CALL get_weather {"city": "Rome"}', "tools": [WEATHER]}, id="function_call"),
        pytest.param({"input": "FAIL 500"}, id="failed"),
        pytest.param({"input": "REPLY hi", "background": True}, id="background"),
    ],
)
def test_pitfall_01_created_first(http: httpx.Client, body: dict[str, Any]):
    capture = _stream(http, body)
    expected = ["response.created", "response.queued"] if body.get("background") else ["response.created"]
    assert capture.types[: len(expected) + 1] == [*expected, "response.in_progress"]


def test_pitfall_01_created_and_in_progress_before_the_upstreams_first_byte(http: httpx.Client, upstream: UpstreamLog):
    capture = _stream(http, {"input": f"TTFT {TTFT_MS}\nREPLY late but fine"})
    created, in_progress = capture.events[:2]
    assert (created.type, in_progress.type) == ("response.created", "response.in_progress")
    first_delta = capture.first("response.output_text.delta")
    # The model holds its first byte TTFT_MS after it got the request: both lifecycle events must be out well before
    # the first delta (arrival times compared with each other, not against an absolute budget) ...
    gap = first_delta.arrived - in_progress.arrived
    assert gap > TTFT_MS / 1000 / 2, f"response.in_progress arrived only {gap:.3f} s before the first delta"
    # ... and before the upstream's first byte: the scripted model runs in this process, on the same monotonic clock.
    ours = [r for r in _chat_requests(upstream) if "late but fine" in json.dumps(r["body"]["messages"])]
    first_byte = ours[-1]["ts"] + TTFT_MS / 1000
    assert in_progress.arrived < first_byte, "response.in_progress waited for the upstream's first byte"


# 2 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_02_output_text_done_and_every_done_event(http: httpx.Client):
    text = _stream(http, {"input": "REPLY one two three"})
    assert squash(text.types) == TEXT_ORDER
    done = text.first("response.output_text.done").data
    assert done["text"] == "one two three" and done["item_id"] and done["content_index"] == 0
    mixed = _stream(
        http,
        {"input": 'REASON sky\nREPLY blue\nCALL get_weather {"city": "Nice"}', "tools": [WEATHER]},
    )
    types = mixed.types
    for opened, closed in [
        ("response.output_item.added", "response.output_item.done"),
        ("response.content_part.added", "response.content_part.done"),
    ]:
        assert types.count(opened) == types.count(closed) > 0, (opened, types)
    # each streamed content has its own final `.done` with the full text
    assert types.count("response.reasoning_text.done") == 1
    assert types.count("response.output_text.done") == 1
    assert types.count("response.function_call_arguments.done") == 1
    last_item_done = max(i for i, t in enumerate(types) if t == "response.output_item.done")
    assert types[last_item_done + 1 :] == ["response.completed"], "the last item is closed before completed"


# 3 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_03_sequence_numbers(http: httpx.Client):
    streams = [
        _stream(http, {"input": "REPLY a b c"}),
        _stream(http, {"input": "FAIL_MIDSTREAM"}),  # error events are numbered too
        _stream(http, {"input": "REPLY a b c", "background": True}),
    ]
    for capture in streams:
        numbers = [event["sequence_number"] for event in capture.data]
        assert all(type(n) is int for n in numbers), numbers
        assert numbers == list(range(len(numbers))), numbers
        for event in capture.data:  # top-level, not nested in `response` or `item`
            assert "sequence_number" not in event.get("response", {}) and "sequence_number" not in event.get("item", {})
    replay = collect(http, "GET", f"/responses/{streams[2].terminal()['id']}", params={"stream": "true"})
    assert [e["sequence_number"] for e in replay.data] == [e["sequence_number"] for e in streams[2].data]


# 4 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_04_item_id_and_content_index_tracking(http: httpx.Client):
    capture = _stream(
        http,
        {"input": 'REASON maps\nREPLY turn left\nCALL get_weather {"city": "Bergen"}', "tools": [WEATHER]},
    )
    final = capture.terminal()
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    for event in capture.data:
        if "item_id" in event:
            item = final["output"][event["output_index"]]
            assert event["item_id"] and event["item_id"] == item["id"], event
        if "content_index" in event:
            assert event["content_index"] == 0, event
    indexes = {
        event["type"]: event["output_index"]
        for event in capture.data
        if event["type"].endswith((".delta", ".done")) and "output_index" in event and "item" not in event
    }
    assert indexes["response.reasoning_text.delta"] == 0
    assert indexes["response.output_text.delta"] == 1
    assert indexes["response.function_call_arguments.delta"] == 2


# 5 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_05_error_event_shape_and_no_swallowed_failure(http: httpx.Client, client: openai.OpenAI):
    capture = _stream(http, {"input": "FAIL 502"})
    error = capture.first("error").data
    assert set(error) == {"type", "sequence_number", "code", "message", "param"}, error
    assert error["code"] == "server_error" and error["param"] is None and error["message"]
    # the SDK surfaces it: an error event and response.failed reach the caller, then the documented RuntimeError
    with client.responses.stream(model="m", input="FAIL 502") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match=r"^Didn't receive a `response.completed` event\.$"):
            stream.get_final_response()
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error", "response.failed"]
    failed: Any = events[-1]
    assert failed.response.status == "failed" and failed.response.error.message == error["message"]
    # errors before the stream starts are plain HTTP errors with OpenAI's envelope, even with stream: true
    bad = http.post("/responses", json={"model": "m", "input": "x", "stream": True, "temperature": 9})
    assert _assert_openai_error(bad, 400)["param"] == "temperature"
    _assert_openai_error(http.get("/responses/resp_nope"), 404)


# 6 ------------------------------------------------------------------------------------------------------------------


def _assert_usage(usage: dict[str, Any] | None, *, reasoning: bool = False) -> None:
    assert usage is not None
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert type(usage["input_tokens_details"]["cached_tokens"]) is int
    assert type(usage["output_tokens_details"]["reasoning_tokens"]) is int
    if reasoning:
        assert 0 < usage["output_tokens_details"]["reasoning_tokens"] <= usage["output_tokens"]


@pytest.mark.parametrize(
    ("body", "reasoning"),
    [
        pytest.param({"input": "REPLY counted words"}, False, id="text"),
        pytest.param({"input": "REASON depth\nREPLY deep"}, True, id="reasoning"),
        pytest.param({"input": "LENGTH\nREPLY cut", "max_output_tokens": 16}, False, id="incomplete"),
    ],
)
def test_pitfall_06_usage_details_present(http: httpx.Client, body: dict[str, Any], reasoning: bool):
    plain = _create(http, body)
    _assert_usage(plain["usage"], reasoning=reasoning)
    assert plain["usage"]["input_tokens"] > 0 and plain["usage"]["output_tokens"] > 0
    streamed = _stream(http, body).terminal()
    _assert_usage(streamed["usage"], reasoning=reasoning)
    assert streamed["usage"] == plain["usage"]
    _assert_usage(_get(http, streamed["id"])["usage"], reasoning=reasoning)


# 7 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_07_previous_response_id_carries_input_and_output(http: httpx.Client, upstream: UpstreamLog):
    first = _create(
        http,
        {
            "instructions": "first instructions",
            "input": [
                {"role": "developer", "content": "dev rules"},
                {"role": "user", "content": 'CALL get_weather {"city": "Lima"}'},
            ],
            "tools": [WEATHER],
        },
    )
    call = first["output"][0]
    second = _create(
        http,
        {
            "previous_response_id": first["id"],
            "tools": [WEATHER],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": '{"t": 21}'}],
        },
    )
    third = _create(http, {"previous_response_id": second["id"], "input": "and tomorrow?"})
    assert third["status"] == "completed"
    messages = upstream.last_messages()
    # instructions are not carried over; every earlier input and output is, in order
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert messages[0] == {"role": "system", "content": "dev rules"}
    assert messages[1]["content"] == 'CALL get_weather {"city": "Lima"}'
    assert messages[2]["tool_calls"][0]["id"] == call["call_id"]
    assert messages[3] == {"role": "tool", "tool_call_id": call["call_id"], "content": '{"t": 21}'}
    assert messages[4]["content"] == 'tool results: {"t": 21}'
    assert messages[5] == {"role": "user", "content": "and tomorrow?"}
    assert "first instructions" not in json.dumps(messages)


def test_pitfall_07_chaining_after_mcp_calls(http: httpx.Client, upstream: UpstreamLog, mcp_url: str):
    first = _create(http, {"input": 'CALL add {"a": 4, "b": 4}', "tools": [mcp_tool(mcp_url)]})
    assert [item["type"] for item in first["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    upstream.clear()
    second = _create(http, {"previous_response_id": first["id"], "input": "thanks", "tools": [mcp_tool(mcp_url)]})
    assert second["status"] == "completed"
    assert [m["role"] for m in upstream.last_messages()] == ["user", "assistant", "tool", "assistant", "user"]
    streamed = _stream(http, {"previous_response_id": second["id"], "input": "again", "tools": [mcp_tool(mcp_url)]})
    assert streamed.terminal()["status"] == "completed"


# 8 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_08_retrieve_returns_the_same_response(http: httpx.Client, client: openai.OpenAI):
    plain = _create(http, {"input": "REPLY kept"})
    assert _get(http, plain["id"]) == plain
    streamed = _stream(http, {"input": "REPLY kept too"}).terminal()
    assert _get(http, streamed["id"]) == streamed
    sdk = client.responses.create(model="m", input="REPLY via sdk")
    assert client.responses.retrieve(sdk.id).id == sdk.id
    listed = client.responses.input_items.list(sdk.id)
    assert listed.data and all(item.id for item in listed.data)


def test_pitfall_08_background_get_is_not_stale(http: httpx.Client):
    created = _create(http, {"input": "SLOW 20\nREPLY " + " ".join(f"w{n}" for n in range(20)), "background": True})
    live = collect(http, "GET", f"/responses/{created['id']}", params={"stream": "true"})
    check_framing(live, replay=True)
    final = live.terminal()
    # the very next GET already serves the terminal state, not an earlier snapshot
    assert _get(http, created["id"]) == final
    assert final["status"] == "completed" and final["id"] == created["id"]


# 9 ------------------------------------------------------------------------------------------------------------------


def test_pitfall_09_cancel_semantics(http: httpx.Client):
    foreground = _create(http, {"input": "REPLY sync"})
    refused = http.post(f"/responses/{foreground['id']}/cancel")
    error = _assert_openai_error(refused, 400)
    assert error["type"] == "invalid_request_error" and error["message"] == "Cannot cancel a synchronous response."
    assert _get(http, foreground["id"]) == foreground
    # a finished background response is returned unchanged
    finished = _create(http, {"input": "REPLY quick", "background": True})
    done = wait_for(http, finished["id"], until_terminal)[-1]
    assert done["status"] == "completed" and done["background"] is True
    unchanged = http.post(f"/responses/{finished['id']}/cancel")
    assert unchanged.status_code == 200, unchanged.text
    validate_response(unchanged.json())
    assert unchanged.json() == done == _get(http, finished["id"])
    # a running one is cancelled, idempotently, and keeps its background flag
    running = _create(http, {"input": "SLOW 200\nREPLY " + " ".join(["w"] * 30), "background": True})
    first = http.post(f"/responses/{running['id']}/cancel").json()
    second = http.post(f"/responses/{running['id']}/cancel").json()
    validate_response(first)
    assert first["status"] == second["status"] == "cancelled" and first["background"] is True
    _assert_openai_error(http.post("/responses/resp_nope/cancel"), 404)


# 10 -----------------------------------------------------------------------------------------------------------------

PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
HISTORIES: dict[str, list[dict[str, Any]]] = {
    "assistant_without_status_or_id": [
        {"role": "user", "content": "hi"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hello", "annotations": []}],
        },
    ],
    "assistant_with_id_and_status": [
        {"role": "user", "content": "hi"},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_client_side",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hello", "annotations": [], "logprobs": []}],
        },
    ],
    "assistant_with_empty_content_list": [
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "assistant", "content": []},
    ],
    "assistant_with_empty_string": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}],
    "output_text_without_annotations": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
    ],
    "messages_without_type_developer_and_system": [
        {"role": "developer", "content": "dev"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ],
    "reasoning_by_value_never_stored": [
        {"role": "user", "content": "hi"},
        {
            "type": "reasoning",
            "id": "rs_never_stored_anywhere",
            "summary": [{"type": "summary_text", "text": "thought briefly"}],
            "content": [{"type": "reasoning_text", "text": "thinking about hi"}],
        },
        {"role": "assistant", "content": "hello"},
    ],
    "reasoning_with_summary_only": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_summary_only", "summary": []},
        {"role": "assistant", "content": "hello"},
    ],
    "function_call_with_non_json_arguments": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_x", "name": "get_weather", "arguments": "city=Paris (not json"},
        {"type": "function_call_output", "call_id": "call_x", "output": "sunny"},
    ],
    "function_call_output_as_parts": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "id": "fc_client", "call_id": "call_y", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_y", "output": [{"type": "input_text", "text": "rainy"}]},
    ],
    "input_text_image_and_file_parts": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                {"type": "input_file", "filename": "a.pdf", "file_data": PDF},
            ],
        },
    ],
}


@pytest.mark.parametrize("history", list(HISTORIES.values()), ids=list(HISTORIES))
def test_pitfall_10_multi_turn_inputs_accepted(http: httpx.Client, upstream: UpstreamLog, history: list[Any]):
    response = _create(http, {"input": [*history, {"role": "user", "content": "REPLY continued"}], "tools": [WEATHER]})
    assert response["status"] == "completed" and response["output"][0]["content"][0]["text"] == "continued"
    assert upstream.last_messages()[-1] == {"role": "user", "content": "REPLY continued"}


def test_pitfall_10_item_reference_resolved(http: httpx.Client, upstream: UpstreamLog):
    first = _create(http, {"input": "REPLY remembered answer"})
    message_id = first["output"][0]["id"]
    second = _create(http, {"input": [{"type": "item_reference", "id": message_id}, {"role": "user", "content": "hi"}]})
    assert second["status"] == "completed"
    assert upstream.last_messages()[:1] == [{"role": "assistant", "content": "remembered answer"}]
    unknown = http.post("/responses", json={"model": "m", "input": [{"type": "item_reference", "id": "msg_unknown"}]})
    error = _assert_openai_error(unknown, 400)
    assert str(error["param"]).startswith("input") and "msg_unknown" in error["message"]


# 11 -----------------------------------------------------------------------------------------------------------------


def test_pitfall_11_store_false_items_resent_by_value(http: httpx.Client, upstream: UpstreamLog):
    turn = [{"role": "user", "content": 'REASON plan\nCALL get_weather {"city": "Kyiv"}'}]
    first = _create(http, {"input": turn, "tools": [WEATHER], "store": False})
    assert first["store"] is False
    assert [item["type"] for item in first["output"]] == ["reasoning", "function_call"]
    assert http.get(f"/responses/{first['id']}").status_code == 404
    refused = http.post("/responses", json={"model": "m", "input": "x", "previous_response_id": first["id"]})
    error = _assert_openai_error(refused, 400)
    assert (error["code"], error["param"]) == ("previous_response_not_found", "previous_response_id")
    # the stateless way: the whole history, output items with their (never stored) ids, by value
    call = first["output"][1]
    history = [*turn, *first["output"], {"type": "function_call_output", "call_id": call["call_id"], "output": "12C"}]
    second = _create(http, {"input": history, "tools": [WEATHER], "store": False})
    assert second["status"] == "completed" and second["output"][-1]["content"][0]["text"] == "tool results: 12C"
    assert [m["role"] for m in upstream.last_messages()] == ["user", "assistant", "tool"]


def test_pitfall_11_encrypted_reasoning_round_trip(http: httpx.Client):
    turn = [{"role": "user", "content": "REASON secrets\nREPLY sealed"}]
    first = _create(http, {"input": turn, "store": False, "include": ["reasoning.encrypted_content"]})
    reasoning = first["output"][0]
    assert reasoning["type"] == "reasoning"
    blob = reasoning.get("encrypted_content")
    assert isinstance(blob, str) and blob and "thinking about secrets" not in blob
    by_value = {"type": "reasoning", "id": reasoning["id"], "summary": [], "encrypted_content": blob}
    again = _create(http, {"input": [*turn, by_value, first["output"][1], {"role": "user", "content": "more"}]})
    assert again["status"] == "completed"
    tampered = {**by_value, "encrypted_content": blob[:-8] + ("A" * 8 if not blob.endswith("A" * 8) else "B" * 8)}
    answer = http.post("/responses", json={"model": "m", "input": [*turn, tampered, {"role": "user", "content": "x"}]})
    assert _assert_openai_error(answer, 400)["type"] == "invalid_request_error"


# 12 -----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["input_tokens", "compact"])
def test_pitfall_12_route_shadowing(http: httpx.Client, route: str):
    answer = http.post(f"/responses/{route}", json={"model": "m", "input": "count me"})
    assert answer.status_code != 405, f"POST /responses/{route} fell into the /responses/{{id}} route"
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        expected = {"input_tokens": "response.input_tokens", "compact": "response.compaction"}[route]
        assert answer.json()["object"] == expected
        return
    error = _assert_openai_error(answer)
    assert 400 <= answer.status_code < 500
    assert "Response with id" not in error["message"], f"POST /responses/{route} was read as a response id"


def test_pitfall_12_input_tokens_endpoint(http: httpx.Client):
    answer = http.post("/responses/input_tokens", json={"model": "m", "input": "count these four words"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "response.input_tokens" and type(body["input_tokens"]) is int and body["input_tokens"] > 0


# 13 -----------------------------------------------------------------------------------------------------------------


def test_pitfall_13_created_at_and_ids_stable(http: httpx.Client):
    for body in ({"input": "REASON x\nREPLY y"}, {"input": "REPLY y", "background": True}):
        capture = _stream(http, body)
        snapshots = [event["response"] for event in capture.data if "response" in event]
        assert len({(s["id"], s["created_at"]) for s in snapshots}) == 1
        final = capture.terminal()
        stored = _get(http, final["id"])
        assert (stored["id"], stored["created_at"]) == (final["id"], final["created_at"])
        added = [e["item"]["id"] for e in capture.data if e["type"] == "response.output_item.added"]
        done = [e["item"]["id"] for e in capture.data if e["type"] == "response.output_item.done"]
        assert added == done == [item["id"] for item in final["output"]] == [item["id"] for item in stored["output"]]
        assert capture.events[-1].type in TERMINAL
    plain = _create(http, {"input": "REPLY y"})
    time.sleep(1.1)  # a second later, the stored created_at must still be the creation time
    assert _get(http, plain["id"])["created_at"] == plain["created_at"]
