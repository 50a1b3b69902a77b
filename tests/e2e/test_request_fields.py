"""Request fields clients send today: accepted, honoured where the upstream can, echoed; refused clearly where
this server cannot honour them."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conformance.sse import check_framing, post_stream
from tests.conformance.validators import validate_events
from tests.conftest import UpstreamLog


def _chat(upstream: UpstreamLog) -> list[dict[str, Any]]:
    return [r["body"] for r in upstream.requests() if r["path"].endswith("/chat/completions")]


@pytest.mark.parametrize("key", ["connector_id", "tunnel_id"])
def test_hosted_connectors_are_a_clear_400(client: openai.OpenAI, upstream: UpstreamLog, key: str):
    tool: Any = {"type": "mcp", "server_label": "mail", key: "connector_gmail", "require_approval": "never"}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="m", input="Read my mail.", tools=[tool])
    error: Any = refused.value.body
    assert error["param"] == f"tools[0].{key}" and error["code"] == "unsupported_value"
    assert "not available on this server" in error["message"] and "server_url" in error["message"]
    assert _chat(upstream) == []


def test_cache_key_safety_identifier_and_tier_reach_the_upstream(client: openai.OpenAI, upstream: UpstreamLog):
    answer = client.responses.create(
        model="m", input="hi", service_tier="flex", prompt_cache_key="thread-7", safety_identifier="user-42"
    )
    assert answer.prompt_cache_key == "thread-7" and answer.safety_identifier == "user-42"
    (sent,) = _chat(upstream)
    assert sent["service_tier"] == "flex" and sent["prompt_cache_key"] == "thread-7"
    assert sent["safety_identifier"] == "user-42"
    upstream.clear()
    client.responses.create(model="m", input="hi")
    (plain,) = _chat(upstream)
    assert not {"service_tier", "prompt_cache_key", "safety_identifier", "logprobs"} & set(plain)


def test_background_options_are_accepted_and_echoed(http: httpx.Client):
    options = {"completion_window": "2h", "continuation_id": "batch-7"}
    created = http.post("/responses", json={"model": "m", "input": "REPLY later", "background": True,
                                             "background_options": options})  # fmt: skip
    assert created.status_code == 200, created.text
    assert created.json()["background_options"] == options
    plain = http.post("/responses", json={"model": "m", "input": "hi"}).json()
    assert "background_options" not in plain
    refused = http.post("/responses", json={"model": "m", "input": "x", "background_options": options})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "background_options.completion_window"
    bad = http.post("/responses", json={"model": "m", "input": "x", "background_options": {"completion_window": "1y"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "background_options.completion_window"


def test_the_tier_the_upstream_reports_is_echoed(client: openai.OpenAI):
    assert client.responses.create(model="m", input="hi", service_tier="flex").service_tier == "flex"
    assert client.responses.create(model="m", input="hi", service_tier="auto").service_tier == "default"
    assert client.responses.create(model="m", input="hi").service_tier == "default"
    with client.responses.stream(model="m", input="hi", service_tier="priority") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().service_tier == "priority"


def _long_history() -> list[Any]:
    return [
        {"role": "user", "content": "first question " + "pad " * 30},
        {"role": "assistant", "content": "first answer " + "pad " * 30},
        {"type": "function_call", "call_id": "call_a", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "looked up " + "pad " * 30},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "CONTEXT 60 REPLY it fits now"},
    ]


def test_truncation_auto_drops_the_oldest_items_and_retries_once(client: openai.OpenAI, upstream: UpstreamLog):
    tool: Any = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    answer = client.responses.create(model="m", input=_long_history(), truncation="auto", tools=[tool])
    assert answer.status == "completed" and answer.output_text == "it fits now" and answer.truncation == "auto"
    refused, retried = _chat(upstream)
    assert len(refused["messages"]) == 6  # the call and its output share one assistant message and a tool message
    # the oldest went first, the call together with its output; the latest user message stayed
    assert [m["role"] for m in retried["messages"]] == ["user", "assistant", "user"]
    assert retried["messages"][0]["content"] == "second question"
    # what was sent is still stored as the response's input
    assert len(client.responses.input_items.list(answer.id).data) == 7


def test_truncation_disabled_keeps_the_upstream_refusal(client: openai.OpenAI, upstream: UpstreamLog):
    try:
        answer = client.responses.create(model="m", input=_long_history())
    except openai.APIStatusError as exc:  # a failed synchronous create is an HTTP error, as on OpenAI
        assert exc.status_code == 400 and "maximum context length" in exc.message
    else:
        assert answer.status == "failed" and answer.error is not None
        assert "maximum context length" in answer.error.message
    assert len(_chat(upstream)) == 1


def test_reasoning_summary_streams_the_upstream_reasoning_as_summary_parts(client: openai.OpenAI, http: httpx.Client):
    body = {"model": "m", "input": "REASON plans REPLY done", "reasoning": {"summary": "auto"}}
    capture = post_stream(http, body)
    check_framing(capture)
    validate_events([event.data for event in capture.events])
    types = [event.type for event in capture.events]
    start, end = types.index("response.output_item.added"), types.index("response.output_item.done")
    reasoning = [t for t in types[start : end + 1] if "delta" not in t]
    assert reasoning == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    deltas = [e.data["delta"] for e in capture.events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == "thinking about plans"
    final = client.responses.create(**body)  # type: ignore[call-overload]
    item = final.output[0]
    assert item.type == "reasoning" and item.summary[0].text == "thinking about plans"
    assert item.content[0].text == "thinking about plans"
    # without reasoning.summary, the summary stays empty (OpenAI's shape) and no summary events are sent
    plain = post_stream(http, {"model": "m", "input": "REASON plans REPLY done"})
    assert not any("summary" in event.type for event in plain.events)


def test_logprobs_are_asked_for_and_returned_on_parts_and_deltas(client: openai.OpenAI, http: httpx.Client,
                                                                  upstream: UpstreamLog):  # fmt: skip
    body = {"model": "m", "input": "REPLY one two", "include": ["message.output_text.logprobs"], "top_logprobs": 2}
    answer = client.responses.create(**body)  # type: ignore[call-overload]
    part = answer.output[0].content[0]
    assert [entry.token for entry in part.logprobs] == ["one", " two"]
    assert [[top.token for top in entry.top_logprobs] for entry in part.logprobs] == [["one", "alt1"], [" two", "alt1"]]
    assert part.logprobs[0].logprob == -0.5 and part.logprobs[0].bytes == list(b"one")
    (sent,) = _chat(upstream)
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    capture = post_stream(http, body)
    validate_events([event.data for event in capture.events])
    deltas = [e.data for e in capture.events if e.type == "response.output_text.delta"]
    assert [d["logprobs"][0]["token"] for d in deltas] == ["one", " two"]
    done = next(e.data for e in capture.events if e.type == "response.output_text.done")
    assert len(done["logprobs"]) == 2
    plain = client.responses.create(model="m", input="REPLY one two", top_logprobs=2)
    assert plain.output[0].content[0].logprobs == []  # type: ignore[union-attr,index]
