"""Decoding ConverseStream events into provider events.

Stream events: ``contentBlockStart.toolUse`` → ``ToolCallDelta`` (id, name; ``index`` counts the response's
tool calls), ``contentBlockDelta`` ``text``/``toolUse.input``/``reasoningContent.text`` → ``TextDelta``/
``ToolCallDelta`` arguments/``ReasoningDelta``, ``messageStop.stopReason`` → ``Finish`` (end_turn/stop_sequence
→ stop, max_tokens/model_context_window_exceeded → length, tool_use → tool_calls, content_filtered/
guardrail_intervened → content_filter; malformed_* is an error), ``metadata.usage`` → ``Usage`` (Bedrock's
``inputTokens`` excludes cache reads and writes; ``input_tokens`` here includes them, as on OpenAI).
"""

from __future__ import annotations

from typing import Any

from engine.providers.base import Finish, ProviderError, ProviderEvent, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from engine.providers.bedrock.convert import ToolNames
from engine.providers.bedrock.errors import ERRORS, client_error

__all__ = ["Decoder"]

_REPORTED_TIERS = {"default": "default", "flex": "flex", "priority": "priority", "reserved": "scale"}

_FINISH: dict[str, Any] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
_MALFORMED = {
    "malformed_model_output": "Amazon Bedrock stopped: the model's output was malformed.",
    "malformed_tool_use": "Amazon Bedrock stopped: the model produced a malformed tool call.",
}


class Decoder:
    """Turns ConverseStream events into provider events, keeping what spans events (tool call indexes)."""

    def __init__(self, names: ToolNames) -> None:
        self._names = names
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._with_arguments: set[int] = set()
        self.finished = False

    def _tool_index(self, block: int) -> int:
        if block not in self._tools:
            self._tools[block] = len(self._tools)
        return self._tools[block]

    def events(self, event: dict[str, Any]) -> list[ProviderEvent]:
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta, block = body.get("delta") or {}, int(body.get("contentBlockIndex") or 0)
            out: list[ProviderEvent] = []
            if delta.get("text"):
                out.append(TextDelta(str(delta["text"])))
            if isinstance(delta.get("toolUse"), dict) and delta["toolUse"].get("input"):
                self._with_arguments.add(block)
                out.append(ToolCallDelta(index=self._tool_index(block), arguments=str(delta["toolUse"]["input"])))
            reasoning = delta.get("reasoningContent")
            if isinstance(reasoning, dict) and reasoning.get("text"):
                out.append(ReasoningDelta(str(reasoning["text"])))
            return out
        if "contentBlockStart" in event:
            body = event["contentBlockStart"]
            tool = (body.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                index = self._tool_index(int(body.get("contentBlockIndex") or 0))
                name = self._names.engine(tool.get("name"))
                return [ToolCallDelta(index=index, call_id=tool.get("toolUseId"), name=name)]
            return []
        if "contentBlockStop" in event:
            block = int(event["contentBlockStop"].get("contentBlockIndex") or 0)
            if block in self._tools and block not in self._with_arguments:
                return [ToolCallDelta(index=self._tools[block], arguments="{}")]  # a call without arguments
            return []
        if "messageStop" in event:
            reason = str(event["messageStop"].get("stopReason") or "end_turn")
            if reason in _MALFORMED:
                raise ProviderError(_MALFORMED[reason], code="server_error")
            self.finished = True
            return [Finish(_FINISH.get(reason, "stop"))]
        if "metadata" in event:
            usage = event["metadata"].get("usage") or {}
            if not usage:
                return []
            cache_read = int(usage.get("cacheReadInputTokens") or 0)
            cache_write = int(usage.get("cacheWriteInputTokens") or 0)
            tier = (event["metadata"].get("serviceTier") or {}).get("type")
            return [
                Usage(
                    input_tokens=int(usage.get("inputTokens") or 0) + cache_read + cache_write,
                    output_tokens=int(usage.get("outputTokens") or 0),
                    cached_tokens=cache_read,
                    service_tier=_REPORTED_TIERS.get(str(tier)) if tier else None,
                )
            ]
        for key, body in event.items():  # an exception member delivered as an event
            code = key[:1].upper() + key[1:]
            if code in ERRORS:
                message = body.get("message") if isinstance(body, dict) else None
                raise client_error(code, str(message or ""), None)
        return []
