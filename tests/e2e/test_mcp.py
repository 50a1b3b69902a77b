"""Server-side MCP tool loops against real MCP servers on 127.0.0.1, through the official openai client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from local.mcp_servers import everything_server, hanging_server, mcp_server, paging_server
from local.stack import running_stack
from tests.conftest import UpstreamLog


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    with mcp_server("streamable-http") as url:
        yield url


@pytest.fixture(scope="module")
def sse_server() -> Iterator[str]:
    with mcp_server("sse") as url:
        yield url


def _mcp(url: str, **extra: Any) -> Any:
    return {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": "never", **extra}


def _types(response: Any) -> list[str]:
    return [item.type for item in response.output]


def test_mcp_tool_loop_lists_calls_and_answers(client: openai.OpenAI, upstream: UpstreamLog, http_server: str):
    response = client.responses.create(model="m", input='CALL add {"a": 2, "b": 3}', tools=[_mcp(http_server)])
    assert _types(response) == ["mcp_list_tools", "mcp_call", "message"]
    listed, call, _ = response.output
    assert listed.type == "mcp_list_tools" and listed.server_label == "calc" and listed.error is None
    assert {"add", "echo", "fail"} <= {t.name for t in listed.tools}
    assert call.type == "mcp_call" and (call.name, call.output, call.error) == ("add", "5", None)
    assert json.loads(call.arguments) == {"a": 2, "b": 3} and call.id.startswith("mcp_")
    assert response.output_text == "tool results: 5"
    # The model was offered the server's tools as functions, and saw the call and its result.
    first, second = [r["body"] for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    assert "add" in [t["function"]["name"] for t in first["tools"]]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert client.responses.retrieve(response.id).model_dump() == response.model_dump()
    echoed = response.model_dump()["tools"][0]
    assert echoed["type"] == "mcp" and echoed["server_url"] == http_server


@pytest.mark.parametrize("shape", ["fireworks-sse", "mcp-with-sse-url"])
def test_legacy_sse_transport(client: openai.OpenAI, sse_server: str, shape: str):
    tool: Any = {"type": "sse", "server_url": sse_server, "server_label": "calc", "require_approval": "never"}
    if shape == "mcp-with-sse-url":
        tool = _mcp(sse_server)
    response = client.responses.create(model="m", input='CALL echo {"text": "over sse"}', tools=[tool])
    assert _types(response) == ["mcp_list_tools", "mcp_call", "message"]
    assert response.output[1].output == "over sse"  # type: ignore[union-attr]


def test_tool_error_is_shown_to_the_model(client: openai.OpenAI, http_server: str):
    response = client.responses.create(model="m", input='CALL fail {"msg": "boom"}', tools=[_mcp(http_server)])
    assert response.status == "completed"
    call = response.output[1]
    assert call.type == "mcp_call" and call.output is None and call.error is not None
    error = call.model_dump()["error"]
    assert error["type"] == "mcp_tool_execution_error" and "boom" in json.dumps(error)
    assert "boom" in response.output_text


def test_approval_flow_runs_the_call_after_approval(client: openai.OpenAI, upstream: UpstreamLog, http_server: str):
    tool: Any = {
        "type": "mcp",
        "server_label": "calc",
        "server_url": http_server,
    }  # require_approval defaults to always
    first = client.responses.create(model="m", input='CALL add {"a": 1, "b": 1}', tools=[tool])
    assert first.status == "completed" and _types(first) == ["mcp_list_tools", "mcp_approval_request"]
    request: Any = first.output[1]
    assert request.type == "mcp_approval_request" and request.name == "add"
    upstream.clear()
    approved = client.responses.create(
        model="m",
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    # the tool list in context is reused, not listed again
    assert _types(approved) == ["mcp_call", "message"]
    call = approved.output[0]
    assert call.type == "mcp_call" and call.output == "2" and call.approval_request_id == request.id
    assert len([r for r in upstream.requests() if r["path"].endswith("/chat/completions")]) == 1


def test_denied_approval_runs_nothing(client: openai.OpenAI, http_server: str):
    tool: Any = {"type": "mcp", "server_label": "calc", "server_url": http_server, "require_approval": "always"}
    first = client.responses.create(model="m", input='REPLY fine\nCALL add {"a": 1, "b": 1}', tools=[tool])
    request: Any = first.output[-1]
    denied = client.responses.create(
        model="m",
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}],
    )
    assert "mcp_call" not in _types(denied)


def test_per_tool_approval_and_allowed_tools(client: openai.OpenAI, upstream: UpstreamLog, http_server: str):
    tool = _mcp(
        http_server,
        allowed_tools=["add", "echo"],
        require_approval={"never": {"tool_names": ["echo"]}},
    )
    response = client.responses.create(model="m", input='CALL echo {"text": "x"}\nCALL add {"a":1,"b":2}', tools=[tool])
    assert [t.name for t in response.output[0].tools] == ["add", "echo"]  # type: ignore[union-attr]
    assert _types(response)[1:] == ["mcp_call", "mcp_approval_request"]
    offered = [t["function"]["name"] for t in upstream.requests()[0]["body"]["tools"]]
    assert sorted(offered) == ["add", "echo"]


def test_max_tool_calls_stops_further_calls(client: openai.OpenAI, http_server: str):
    response = client.responses.create(
        model="m",
        input='CALL add {"a": 1, "b": 1}\nCALL add {"a": 2, "b": 2}',
        tools=[_mcp(http_server)],
        max_tool_calls=1,
    )
    assert _types(response).count("mcp_call") == 1
    assert response.output[-1].type == "message" and response.status == "completed"


def test_mixed_function_and_mcp_tools(client: openai.OpenAI, http_server: str):
    weather = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    response = client.responses.create(
        model="m",
        input='CALL add {"a": 1, "b": 2}\nCALL get_weather {}',
        tools=[_mcp(http_server), weather],  # type: ignore[list-item]
    )
    assert _types(response) == ["mcp_list_tools", "mcp_call", "function_call"]
    assert response.output[1].output == "3"  # type: ignore[union-attr]


def test_chaining_after_mcp_calls_and_store_false(client: openai.OpenAI, upstream: UpstreamLog, http_server: str):
    first = client.responses.create(model="m", input='CALL add {"a": 4, "b": 4}', tools=[_mcp(http_server)])
    upstream.clear()
    second = client.responses.create(
        model="m", input="thanks", previous_response_id=first.id, tools=[_mcp(http_server)]
    )
    assert second.status == "completed" and _types(second) == ["message"]
    roles = [m["role"] for m in upstream.last_messages()]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    stateless = client.responses.create(
        model="m", input='CALL add {"a": 1, "b": 1}', tools=[_mcp(http_server)], store=False
    )
    assert stateless.output[1].output == "2"  # type: ignore[union-attr]


def test_streamed_mcp_events_in_spec_order(client: openai.OpenAI, http_server: str):
    with client.responses.stream(model="m", input='CALL add {"a": 5, "b": 5}', tools=[_mcp(http_server)]) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    expected = [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed",
        "response.output_item.done",
        "response.output_item.added", "response.mcp_call_arguments.delta",
    ]  # fmt: skip
    assert types[: len(expected)] == expected
    call_tail = types[types.index("response.mcp_call_arguments.done") :]
    assert call_tail[:4] == [
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    assert types[-1] == "response.completed"
    stored = client.responses.retrieve(final.id).model_dump()
    assert [i["type"] for i in stored["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert stored["output"][1]["output"] == "10"


def test_paged_tool_list_is_drained(client: openai.OpenAI):
    with paging_server() as url:
        response = client.responses.create(model="m", input="hi", tools=[_mcp(url)])
    listed = response.output[0]
    assert listed.type == "mcp_list_tools" and len(listed.tools) == 25


def test_unreachable_and_hanging_servers_fail_clearly(client: openai.OpenAI):
    with hanging_server() as hanging:
        for url in ("http://127.0.0.1:9/mcp", hanging):
            response = client.responses.create(model="m", input="hi", tools=[_mcp(url)])
            assert response.status == "completed"
            listed = response.output[0]
            assert listed.type == "mcp_list_tools" and listed.error and listed.tools == []
            assert response.output[-1].type == "message"


def test_server_everything_from_npm(client: openai.OpenAI):
    with everything_server("streamableHttp") as url:
        response = client.responses.create(
            model="m", input='CALL echo {"message": "hello everything"}', tools=[_mcp(url, server_label="everything")]
        )
    assert _types(response) == ["mcp_list_tools", "mcp_call", "message"]
    assert "hello everything" in (response.output[1].output or "")  # type: ignore[union-attr]


def test_deployment_refuses_private_mcp_urls_with_400(http_server: str):
    with running_stack(env={"MCP_ALLOW_PRIVATE_NETWORKS": "false"}) as base_url:
        for url in (http_server, "http://169.254.169.254/latest", "http://10.1.2.3/mcp", "file:///etc/passwd"):
            answer = httpx.post(f"{base_url}/responses", json={"model": "m", "input": "x", "tools": [_mcp(url)]})
            assert answer.status_code == 400, url
            assert answer.json()["error"]["param"] == "tools[0].server_url"
