"""Compaction through the openai client: ``responses.compact`` summarizes with the upstream, the sealed item is
sent back by value (or found in a chain) and the upstream sees the summary in place of what it replaced."""

from __future__ import annotations

from typing import Any

import httpx
import openai

from engine.responses.compaction import COMPACTION_PROMPT
from engine.responses.input import SUMMARY_PREFIX
from tests.conformance.sse import check_framing, post_stream
from tests.conformance.validators import validate_events
from tests.conftest import UpstreamLog

HISTORY: list[Any] = [
    {"role": "user", "content": "We agreed to launch on Tuesday and notify support first."},
    {"role": "assistant", "content": "Understood. The launch is Tuesday, with support notified beforehand. " * 40},
    {"role": "user", "content": "Also remember the code word: slate."},
]
# the scripted model echoes the roles it saw and the last user message: the compaction prompt
SUMMARY = f"roles=user,assistant,user,user; last={COMPACTION_PROMPT}"


def _chat(upstream: UpstreamLog) -> list[dict[str, Any]]:
    return [r["body"] for r in upstream.requests() if r["path"].endswith("/chat/completions")]


def test_compact_returns_retained_user_messages_and_one_sealed_item(client: openai.OpenAI, upstream: UpstreamLog):
    compacted = client.responses.compact(model="m", input=HISTORY, prompt_cache_key="thread-42")
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    assert isinstance(compacted.created_at, int)
    *kept, item = compacted.output
    assert [m.role for m in kept] == ["user", "user"]  # type: ignore[union-attr]
    assert [m.content[0].text for m in kept] == [HISTORY[0]["content"], HISTORY[2]["content"]]  # type: ignore[union-attr,index]
    assert item.type == "compaction" and item.id.startswith("cmp_")
    assert item.encrypted_content.startswith("cmp2.") and "roles=" not in item.encrypted_content
    # the upstream summarized the whole history, asked last
    (request,) = _chat(upstream)
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user", "user"]
    assert request["messages"][-1]["content"] == COMPACTION_PROMPT and "tools" not in request
    assert compacted.usage.input_tokens > 0 and compacted.usage.output_tokens > 0
    assert compacted.usage.total_tokens == compacted.usage.input_tokens + compacted.usage.output_tokens


def test_a_create_sees_the_summary_in_place_of_what_it_replaced(client: openai.OpenAI, upstream: UpstreamLog):
    compacted = client.responses.compact(model="m", input=HISTORY)
    window: list[Any] = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    upstream.clear()
    answer = client.responses.create(model="m", store=False, input=[*window, {"role": "user", "content": "Go on."}])
    assert answer.status == "completed"
    messages = upstream.last_messages()
    assert messages == [
        {"role": "user", "content": HISTORY[0]["content"]},
        {"role": "user", "content": HISTORY[2]["content"]},
        {"role": "user", "content": SUMMARY_PREFIX + SUMMARY},
        {"role": "user", "content": "Go on."},
    ]


def test_a_chain_through_a_compaction_keeps_only_its_window(client: openai.OpenAI, upstream: UpstreamLog):
    compacted = client.responses.compact(model="m", input=HISTORY)
    window: list[Any] = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    first = client.responses.create(model="m", input=[*window, {"role": "user", "content": "REPLY noted"}])
    # the stored input lists the compaction item as the client sent it: still sealed
    listed = client.responses.input_items.list(first.id, order="asc").data
    assert [i.type for i in listed][-2:] == ["compaction", "message"]
    assert listed[-2].encrypted_content == window[-1]["encrypted_content"]  # type: ignore[union-attr]
    upstream.clear()
    client.responses.create(model="m", previous_response_id=first.id, input="And now?")
    roles = [(m["role"], m["content"][:20]) for m in upstream.last_messages()]
    assert roles == [
        ("user", HISTORY[0]["content"][:20]),
        ("user", HISTORY[2]["content"][:20]),
        ("user", SUMMARY_PREFIX[:20]),
        ("user", "REPLY noted"),
        ("assistant", "noted"),
        ("user", "And now?"),
    ]
    # compacting the chain again keeps every user message it shows, and summarizes the earlier summary
    again = client.responses.compact(model="m", previous_response_id=first.id, input="One more.")
    assert [getattr(i, "role", i.type) for i in again.output] == ["user", "user", "user", "user", "compaction"]


def test_forged_or_foreign_compaction_items_are_refused(client: openai.OpenAI, http: httpx.Client):
    compacted = client.responses.compact(model="m", input=HISTORY)
    blob = str(compacted.output[-1].encrypted_content)  # type: ignore[union-attr]
    forged = blob[:-6] + ("AAAAAA" if not blob.endswith("AAAAAA") else "BBBBBB")
    for content in (forged, "plain summary the client wrote"):
        answer = http.post(
            "/responses",
            json={
                "model": "m",
                "input": [{"role": "user", "content": "hi"}, {"type": "compaction", "encrypted_content": content}],
            },
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == "input[1].encrypted_content" and error["code"] == "invalid_encrypted_content"
    # a reasoning blob is not a compaction summary either
    reasoning = client.responses.create(
        model="m", store=False, include=["reasoning.encrypted_content"], input="REASON x REPLY y"
    ).output[0]
    answer = http.post(
        "/responses/compact",
        json={"model": "m", "input": [{"type": "compaction", "encrypted_content": reasoning.encrypted_content}]},  # type: ignore[union-attr]
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "input[0].encrypted_content"


def test_compact_refuses_bad_requests_with_openai_errors(http: httpx.Client):
    missing = http.post("/responses/compact", json={"input": "hi"})
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "missing_required_parameter",
    }
    nothing = http.post("/responses/compact", json={"model": "m"})
    assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "input"
    unknown = http.post("/responses/compact", json={"model": "m", "previous_response_id": "resp_nope"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "previous_response_not_found"
    assert http.post("/responses/compact", json={"model": "m", "input": "hi", "instructions": "x"}).status_code == 200


def test_upstream_failures_of_compact_are_http_errors(client: openai.OpenAI, upstream: UpstreamLog):
    try:
        client.responses.compact(model="m", input=HISTORY, instructions="FAIL 500")
    except openai.APIStatusError as exc:
        assert exc.status_code == 502 and "HTTP 500" in exc.message
    else:
        raise AssertionError("a failing upstream must not give a compacted response")


def test_input_tokens_count_the_summary_not_what_it_replaced(client: openai.OpenAI):
    compacted = client.responses.compact(model="m", input=HISTORY)
    window: list[Any] = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    full = client.responses.input_tokens.count(model="m", input=HISTORY).input_tokens
    after = client.responses.input_tokens.count(model="m", input=window).input_tokens
    users_only = client.responses.input_tokens.count(model="m", input=[HISTORY[0], HISTORY[2]]).input_tokens
    summary_tokens = (len(SUMMARY_PREFIX + SUMMARY) + 3) // 4
    assert after < full and after >= users_only + summary_tokens


THRESHOLD: Any = [{"type": "compaction", "compact_threshold": 500}]


def test_context_management_compacts_before_the_turn(client: openai.OpenAI, upstream: UpstreamLog):
    answer = client.responses.create(
        model="m", input=[*HISTORY, {"role": "user", "content": "Go on."}], context_management=THRESHOLD
    )
    assert answer.status == "completed"
    compaction, message = answer.output
    assert compaction.type == "compaction" and compaction.encrypted_content.startswith("cmp2.")
    assert message.type == "message"
    summarize, turn = _chat(upstream)
    assert summarize["messages"][-1]["content"] == COMPACTION_PROMPT and len(summarize["messages"]) == 5
    summary = f"roles=user,assistant,user,user,user; last={COMPACTION_PROMPT}"
    assert turn["messages"] == [
        {"role": "user", "content": HISTORY[0]["content"]},
        {"role": "user", "content": HISTORY[2]["content"]},
        {"role": "user", "content": "Go on."},
        {"role": "user", "content": SUMMARY_PREFIX + summary},
    ]
    # both upstream calls are this response's usage (the scripted model counts words)
    words = [sum(len(m["content"].split()) for m in request["messages"]) for request in (summarize, turn)]
    assert answer.usage is not None and answer.usage.input_tokens == sum(words)
    # the chain continues from the compaction: the model sees the window, not the history again
    upstream.clear()
    client.responses.create(model="m", previous_response_id=answer.id, input="Next.", context_management=THRESHOLD)
    (turn,) = _chat(upstream)
    assert [m["content"][:12] for m in turn["messages"]] == [
        HISTORY[0]["content"][:12], HISTORY[2]["content"][:12], "Go on.", SUMMARY_PREFIX[:12],
        message.content[0].text[:12], "Next.",  # type: ignore[union-attr]
    ]  # fmt: skip


def test_context_management_below_the_threshold_does_nothing(client: openai.OpenAI, upstream: UpstreamLog):
    answer = client.responses.create(model="m", input="short", context_management=[{"type": "compaction"}])
    assert [item.type for item in answer.output] == ["message"] and len(_chat(upstream)) == 1


def test_the_compaction_item_is_streamed_as_openai_does(client: openai.OpenAI, http: httpx.Client):
    body = {"model": "m", "input": HISTORY, "context_management": THRESHOLD, "stream": True}
    with client.responses.stream(**{k: v for k, v in body.items() if k != "stream"}) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    start = types.index("response.output_item.added")
    assert types[start : start + 3] == [
        "response.output_item.added",
        "response.compaction.compacting",
        "response.output_item.done",
    ]
    assert [item.type for item in final.output] == ["compaction", "message"]
    # the raw stream: framing and numbering, and every event valid (the compaction event as openai types it)
    capture = post_stream(http, {k: v for k, v in body.items() if k != "stream"})
    check_framing(capture)
    validate_events([event.data for event in capture.events])
