"""The request paths every validator and framing check runs on, each scripted through the stack's upstream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CLOCK: dict[str, Any] = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}

OBJ_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"a": {"type": "integer"}},
    "required": ["a"],
    "additionalProperties": False,
}


def mcp_tool(url: str, approval: str = "never") -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": approval}


Prepare = Callable[[openai.OpenAI, str], dict[str, Any]]


@dataclass(frozen=True)
class Path:
    name: str
    input: str
    status: str
    """Terminal status expected, streamed or not."""
    items: tuple[str, ...] | None
    """Output item types expected (streamed and not), or None when they differ between the two."""
    tools: Callable[[str], list[dict[str, Any]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    prepare: Prepare | None = None
    """Makes a previous response and returns the fields that continue it (e.g. an MCP approval)."""

    def body(self, client: openai.OpenAI, mcp_url: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": "scripted-model", "input": self.input, **self.extra}
        if self.tools is not None:
            body["tools"] = self.tools(mcp_url)
        if self.prepare is not None:
            body.update(self.prepare(client, mcp_url))
        return body


def _approve(client: openai.OpenAI, mcp_url: str) -> dict[str, Any]:
    tool: Any = mcp_tool(mcp_url, "always")
    first = client.responses.create(model="scripted-model", input='CALL add {"a": 20, "b": 22}', tools=[tool])
    request = first.output[-1]
    assert request.type == "mcp_approval_request", first.output
    approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    return {"previous_response_id": first.id, "input": [approval]}


PATHS = [
    Path("text", "REPLY hello conformance world", "completed", ("message",)),
    Path("reasoning", "REASON tides\nREPLY high tide at noon", "completed", ("reasoning", "message")),
    Path("function_call", 'CALL get_weather {"city": "Paris"}', "completed", ("function_call",), lambda _: [WEATHER]),
    Path(
        "parallel_function_calls",
        'CALL get_weather {"city": "Paris"}\nCALL get_time {"tz": "CET"}',
        "completed",
        ("function_call", "function_call"),
        lambda _: [WEATHER, CLOCK],
    ),
    Path(
        "text_then_function_call",
        'REPLY let me check\nCALL get_weather {"city": "Oslo"}',
        "completed",
        ("message", "function_call"),
        lambda _: [WEATHER],
    ),
    Path(
        "mcp_list_and_call",
        'CALL add {"a": 2, "b": 3}',
        "completed",
        ("mcp_list_tools", "mcp_call", "message"),
        lambda url: [mcp_tool(url)],
    ),
    Path(
        "mcp_call_error",
        'CALL fail {"msg": "boom"}',
        "completed",
        ("mcp_list_tools", "mcp_call", "message"),
        lambda url: [mcp_tool(url)],
    ),
    Path(
        "mcp_approval_request",
        'CALL add {"a": 1, "b": 1}',
        "completed",
        ("mcp_list_tools", "mcp_approval_request"),
        lambda url: [mcp_tool(url, "always")],
    ),
    Path(
        "mcp_approved_call",
        "",
        "completed",
        ("mcp_call", "message"),
        lambda url: [mcp_tool(url, "always")],
        prepare=_approve,
    ),
    Path(
        "structured_output_json_schema",
        'REPLY {"a": 1}',
        "completed",
        ("message",),
        extra={"text": {"format": {"type": "json_schema", "name": "obj", "schema": OBJ_SCHEMA}}},
    ),
    Path(
        "custom_tool_call",
        'CALL grep {"input": "needle"}',
        "completed",
        ("custom_tool_call",),
        lambda _: [{"type": "custom", "name": "grep", "description": "Search text."}],
    ),
    Path(
        "namespace_function_call",
        'CALL get_weather {"city": "Turku"}',
        "completed",
        ("function_call",),
        lambda _: [{"type": "namespace", "name": "wx", "description": "Weather tools.", "tools": [WEATHER]}],
    ),
    Path("failed_before_first_token", "FAIL 500", "failed", ()),
    # Not streamed, FAIL_MIDSTREAM is a plain 500; streamed, the partial message is closed as incomplete.
    Path("failed_midstream", "FAIL_MIDSTREAM", "failed", None),
    Path("incomplete", "LENGTH\nREPLY cut short", "incomplete", ("message",), extra={"max_output_tokens": 16}),
]

COMPLETED = [path for path in PATHS if path.status == "completed"]
NOT_COMPLETED = [path for path in PATHS if path.status != "completed"]
