"""The stateless path coding agents use: store=false, the whole history every turn, reasoning by value with
encrypted_content; and item_reference against stored items."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from local.sse import frames
from tests.conftest import UpstreamLog


def _stream(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    with http.stream("POST", "/responses", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        return [frame.json() for frame in frames(response.iter_lines()) if not frame.done]


def test_codex_style_turns_with_encrypted_reasoning(http: httpx.Client, upstream: UpstreamLog):
    history: list[dict[str, Any]] = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be terse"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "REASON plans\nREPLY ok"}]},
    ]
    body = {"model": "m", "store": False, "include": ["reasoning.encrypted_content"], "input": history}
    events = _stream(http, body)
    final = events[-1]["response"]
    reasoning, message = final["output"]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"].startswith("rsn2.")
    done_items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done_items[0]["encrypted_content"] == reasoning["encrypted_content"]
    # the next turn resends everything by value, including the reasoning item (which was never stored)
    sent_back = {k: v for k, v in reasoning.items() if k != "content"}
    history += [sent_back, message, {"role": "user", "content": "next"}]
    follow = _stream(http, {**body, "input": history})
    assert follow[-1]["type"] == "response.completed"
    # this turn's upstream request (a background run of an earlier test may still be talking to the same model)
    chat = [r["body"]["messages"] for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    (sent,) = [messages for messages in chat if messages[-1].get("content") == "next"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    # a tampered blob is a 400 naming the item, not a crash
    tampered = dict(sent_back, encrypted_content=sent_back["encrypted_content"][:-6] + "AAAAAA")
    history[2] = tampered
    answer = http.post("/responses", json={**body, "input": history})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input[2].encrypted_content"
    foreign = dict(sent_back, encrypted_content="rsn1.bm90LW91cnM=")
    history[2] = foreign
    assert http.post("/responses", json={**body, "input": history}).status_code == 400


def test_reasoning_resent_without_encrypted_content_and_unknown_ids_is_accepted(client: openai.OpenAI):
    items: Any = [
        {"type": "reasoning", "id": "rs_never_stored", "summary": [{"type": "summary_text", "text": "x"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "earlier"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": []},
        {"role": "user", "content": "go on"},
    ]
    response = client.responses.create(model="m", input=items, store=False)
    assert response.status == "completed"


def test_item_reference_resolves_stored_items(client: openai.OpenAI, upstream: UpstreamLog):
    first = client.responses.create(model="m", input="REPLY remembered answer")
    answer_id = first.output[0].id
    refs: Any = [
        {"role": "user", "content": "REPLY remembered answer"},
        {"type": "item_reference", "id": answer_id},
        {"role": "user", "content": "and?"},
    ]
    second = client.responses.create(model="m", input=refs)
    assert second.status == "completed"
    assert upstream.last_messages()[1] == {"role": "assistant", "content": "remembered answer"}
    stored = client.responses.input_items.list(second.id, order="asc").data
    assert stored[1].id == answer_id and stored[1].type == "message"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input=[{"type": "item_reference", "id": "msg_nope"}])
    assert caught.value.param == "input[0]"
    gone = client.responses.create(model="m", input="REPLY not kept", store=False)
    with pytest.raises(openai.BadRequestError):
        reference: Any = [{"type": "item_reference", "id": gone.output[0].id}]
        client.responses.create(model="m", input=reference)
