"""POST /v1/responses/input_tokens counts the context a create would send (chains and tools included)."""

from __future__ import annotations

import httpx
import openai


def test_counts_follow_the_context(client: openai.OpenAI, http: httpx.Client):
    short = client.responses.input_tokens.count(model="m", input="hi")
    assert short.object == "response.input_tokens" and short.input_tokens > 0
    longer = client.responses.input_tokens.count(model="m", input="hi " * 400)
    assert longer.input_tokens > short.input_tokens + 250
    first = client.responses.create(model="m", input="REPLY " + "word " * 200)
    chained = client.responses.input_tokens.count(previous_response_id=first.id, input="hi")
    assert chained.input_tokens > short.input_tokens + 200  # the earlier turn's input and output count too
    tool = {"type": "function", "name": "f", "description": "d " * 100, "parameters": {"type": "object"}}
    with_tools = http.post("/responses/input_tokens", json={"input": "hi", "tools": [tool]}).json()
    assert with_tools["input_tokens"] > short.input_tokens + 40
    empty = http.post("/responses/input_tokens", json={})
    assert empty.status_code == 200 and empty.json()["input_tokens"] == 0
    bad = http.post("/responses/input_tokens", json={"previous_response_id": "resp_nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "previous_response_not_found"
