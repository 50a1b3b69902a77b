"""Function call ↔ output pairing, checked as OpenAI checks it before a turn is sent to the model."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidRequestError

__all__ = ["check_pairing"]


def check_pairing(items: list[dict[str, Any]]) -> None:
    """Every ``function_call_output`` needs its ``function_call`` earlier in the context, and every
    ``function_call`` needs an output before the model is asked again."""
    calls: dict[str, None] = {}
    answered: set[str] = set()
    for item in items:
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call"):
            calls[item["call_id"]] = None
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if call_id not in calls:
                raise InvalidRequestError(
                    f"No tool call found for function call output with call_id {call_id}.", param="input"
                )
            answered.add(call_id)
    for call_id in calls:
        if call_id not in answered:
            raise InvalidRequestError(f"No tool output found for function call {call_id}.", param="input")
