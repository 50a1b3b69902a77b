"""What real agent clients send: namespace tools, custom tools, hosted tools, newer fields; and strict mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from local.sse import frames
from local.stack import running_stack
from tests.conftest import UpstreamLog

CRM: Any = {
    "type": "namespace",
    "name": "crm",
    "description": "Customer records",
    "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
}
PATCH: Any = {"type": "custom", "name": "apply_patch", "description": "Apply a unified diff"}


def test_namespace_tools_come_back_as_function_calls_with_namespace(client: openai.OpenAI, upstream: UpstreamLog):
    # a namespace's tools keep their own names where unique, and are qualified where they would collide
    first = client.responses.create(model="m", input='CALL lookup {"id": 7}', tools=[CRM])
    offered = [t["function"]["name"] for t in upstream.requests()[-1]["body"]["tools"]]
    assert offered == ["lookup"]
    call = first.output[0].model_dump()
    assert (call["type"], call["name"], call["namespace"]) == ("function_call", "lookup", "crm")
    second = client.responses.create(
        model="m",
        previous_response_id=first.id,
        tools=[CRM],
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "found"}],
    )
    assert second.output_text == "tool results: found"
    assert upstream.last_messages()[1]["tool_calls"][0]["function"]["name"] == "lookup"
    plain: Any = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    client.responses.create(model="m", input="hi", tools=[plain, CRM])
    offered = [t["function"]["name"] for t in upstream.requests()[-1]["body"]["tools"]]
    assert offered == ["lookup", "crm__lookup"]


def test_custom_tools_come_back_as_custom_tool_calls(client: openai.OpenAI, http: httpx.Client, upstream: UpstreamLog):
    diff = "--- a\\n+++ b"
    first = client.responses.create(model="m", input=f'CALL apply_patch {{"input": "{diff}"}}', tools=[PATCH])
    offered = upstream.requests()[-1]["body"]["tools"][0]["function"]
    assert offered["name"] == "apply_patch" and offered["parameters"]["required"] == ["input"]
    call = first.output[0].model_dump()
    assert call["type"] == "custom_tool_call" and call["input"] == "--- a\n+++ b"
    second = client.responses.create(
        model="m",
        previous_response_id=first.id,
        tools=[PATCH],
        input=[{"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "applied"}],
    )
    assert second.output_text == "tool results: applied"
    # streamed: added → input delta → input done → done
    with http.stream(
        "POST",
        "/responses",
        json={"model": "m", "input": 'CALL apply_patch {"input": "x"}', "tools": [PATCH], "stream": True},  # fmt: skip
    ) as response:
        types = [frame.json()["type"] for frame in frames(response.iter_lines()) if not frame.done]
    start = types.index("response.output_item.added")
    assert types[start : start + 4] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
    ]


@pytest.fixture(scope="module")
def strict_stack(upstream_url: str) -> Iterator[str]:
    with running_stack(upstream_base_url=upstream_url, env={"STRICT_REQUESTS": "true"}) as base_url:
        yield base_url


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"client_metadata": {"a": "b"}}, "client_metadata", "unknown_parameter"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "invalid_value"),
    ],
)
def test_strict_requests_turns_leniency_into_openai_400s(strict_stack: str, body: Any, param: str, code: str):
    answer = httpx.post(f"{strict_stack}/responses", json={"model": "m", "input": "x", **body})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == (param, code)
