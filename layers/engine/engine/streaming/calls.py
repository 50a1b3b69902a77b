"""The tool calls of one model turn: how a call is classified once its name is known, the call being assembled
from deltas, and what a finished turn hands back to the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic_core import from_json

from engine.models.items import (
    FileSearchCall,
    McpApprovalRequest,
    McpCall,
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
)

__all__ = ["CallKind", "Classifier", "PendingCall", "TurnCall", "TurnResult", "custom_input", "unclassified"]

CallKind = Literal["function", "custom", "mcp", "approval", "ignore", "file_search"]
# chat name -> (kind, MCP server label or function namespace, tool name); decided once per call, when its name
# is known.
Classifier = Callable[[str], tuple[CallKind, str | None, str]]


@dataclass(slots=True)
class TurnCall:
    """One tool call the model made in a turn, and the item it became."""

    kind: CallKind
    chat_name: str
    arguments: str
    call_id: str
    item: ResponseFunctionToolCall | ResponseCustomToolCall | McpCall | McpApprovalRequest | FileSearchCall | None = (
        None
    )
    index: int = -1


@dataclass(slots=True)
class TurnResult:
    """What a model turn produced: its text and its tool calls, in the order the model made them."""

    text: str = ""
    calls: list[TurnCall] = field(default_factory=list)


class PendingCall:
    """A tool call whose deltas are arriving; it becomes a ``TurnCall`` once its name is known."""

    __slots__ = ("arguments", "call", "call_id", "name")

    def __init__(self, call_id: str | None) -> None:
        self.arguments: list[str] = []
        self.name = ""
        self.call: TurnCall | None = None
        self.call_id = call_id or ""


def custom_input(arguments: str) -> str:
    """A custom tool's input: offered as a function of one string, it arrives as JSON ``{"input": ...}``."""
    try:
        parsed = from_json(arguments or "{}")
    except ValueError:
        return arguments
    return str(parsed.get("input", "")) if isinstance(parsed, dict) else arguments


def unclassified(name: str) -> tuple[CallKind, str | None, str]:
    """The classifier before any turn began: every call is a function call."""
    return "function", None, name
