"""The built-in demo model: answers without any upstream, and says so in every reply.

Offered tools (and allowed to call them), it shows tool calling too: a user message is answered with a call of
the first tool, its arguments made from the tool's schema (placeholder values), and the tool's result, once sent
back, with the usual labelled reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic_core import to_json

from engine.providers.base import ChatRequest, Finish, ProviderEvent, TextDelta, ToolCallDelta, Usage

__all__ = ["DemoProvider"]

_LABEL = "[demo model]"


def _text_of(message: dict[str, object]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


_PLACEHOLDERS: dict[str, Any] = {"string": "demo", "number": 0, "integer": 0, "boolean": False, "array": []}


def _placeholder_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Values for a schema's required properties: its first enum value, else a placeholder of its type."""
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in schema.get("required") or []:
        spec = properties.get(name) or {}
        kind = spec.get("type")
        if spec.get("enum"):
            arguments[name] = spec["enum"][0]
        elif kind == "object":
            arguments[name] = _placeholder_arguments(spec)
        else:
            arguments[name] = _PLACEHOLDERS.get(kind if isinstance(kind, str) else "string", "demo")
    return arguments


class DemoProvider:
    """Deterministic replies, streamed word by word; honours ``max_output_tokens`` (one word = one token)."""

    name = "demo"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        last = request.messages[-1] if request.messages else {}
        if request.tools and request.tool_choice != "none" and last.get("role") == "user":
            function = request.tools[0].get("function") or {}
            name = str(function.get("name") or "tool")
            yield TextDelta(f"{_LABEL} Calling {name} with placeholder arguments.")
            arguments = to_json(_placeholder_arguments(function.get("parameters") or {})).decode()
            yield ToolCallDelta(index=0, call_id="call_demo", name=name, arguments=arguments)
            yield Usage(input_tokens=sum(len(_text_of(m).split()) for m in request.messages), output_tokens=8)
            yield Finish("tool_calls")
            return
        last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
        said = _text_of(last_user) if last_user else ""
        reply = (
            f"{_LABEL} Hello! I am the built-in demo model of this Responses API: no upstream model is "
            f"configured (set UPSTREAM_BASE_URL and UPSTREAM_API_KEY). This conversation has "
            f"{len(request.messages)} message(s); you said: {said!r}"
        )
        words = reply.split(" ")
        limit = request.max_output_tokens
        emitted = words if limit is None else words[:limit]
        for i, word in enumerate(emitted):
            yield TextDelta(word if i == 0 else " " + word)
        prompt_words = sum(len(_text_of(m).split()) for m in request.messages)
        yield Usage(input_tokens=prompt_words, output_tokens=len(emitted))
        yield Finish("length" if len(emitted) < len(words) else "stop")
