"""Function tools: accept the Responses flat shape and the Chat-Completions nested shape, echo the flat one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidRequestError, from_validation_errors

__all__ = ["FunctionTool", "apply_tool_choice", "prepare_tools"]


class FunctionTool(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: str = "function"
    name: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.:-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = True

    def to_chat(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters or {"type": "object"}}
        if self.description:
            function["description"] = self.description
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}


def prepare_tools(tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate ``tools`` → (the flat shape echoed in the Response, the Chat Completions ``tools``)."""
    echoed: list[dict[str, Any]] = []
    chat: list[dict[str, Any]] = []
    for index, raw in enumerate(tools or []):
        kind = raw.get("type")
        if kind != "function":
            raise InvalidRequestError(
                f"Tool type '{kind}' is not supported by this server.",
                param=f"tools[{index}].type",
                code="invalid_value",
            )
        flat = {"type": "function", **raw["function"]} if isinstance(raw.get("function"), dict) else raw
        try:
            tool = FunctionTool.model_validate(flat)
        except ValidationError as exc:
            err = from_validation_errors(exc.errors())
            err.param = f"tools[{index}].{err.param}" if err.param else f"tools[{index}]"
            raise err from None
        echoed.append(tool.model_dump())
        chat.append(tool.to_chat())
    return echoed, chat


def _function_names(tools: list[dict[str, Any]]) -> set[str]:
    return {t["function"]["name"] for t in tools}


def apply_tool_choice(
    tool_choice: str | dict[str, Any] | None, chat_tools: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | dict[str, Any] | None]:
    """Responses ``tool_choice`` → (the tools the model may see, Chat Completions ``tool_choice``).

    ``allowed_tools`` is enforced by offering only those tools, not left to the model's goodwill.
    """
    if not chat_tools:
        if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
            raise InvalidRequestError(
                f"Tool choice '{tool_choice.get('name')}' not found in 'tools' parameter.", param="tool_choice"
            )
        return [], None
    if tool_choice is None or tool_choice in ("auto", "none", "required"):
        return chat_tools, tool_choice
    if not isinstance(tool_choice, dict):
        raise InvalidRequestError(f"Invalid tool_choice: '{tool_choice}'.", param="tool_choice", code="invalid_value")
    kind = tool_choice.get("type")
    if kind == "function":
        name = tool_choice.get("name")
        if name not in _function_names(chat_tools):
            raise InvalidRequestError(f"Tool choice '{name}' not found in 'tools' parameter.", param="tool_choice")
        return chat_tools, {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        mode = tool_choice.get("mode", "auto")
        allowed = tool_choice.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise InvalidRequestError(
                "tool_choice.allowed_tools needs mode 'auto' or 'required' and a list of tools.",
                param="tool_choice",
                code="invalid_value",
            )
        names = {str(t.get("name")) for t in allowed if isinstance(t, dict) and t.get("type") == "function"}
        unknown = names - _function_names(chat_tools)
        if unknown:
            raise InvalidRequestError(
                f"Allowed tool '{sorted(unknown)[0]}' not found in 'tools' parameter.", param="tool_choice.tools"
            )
        offered = [t for t in chat_tools if t["function"]["name"] in names]
        return offered, (mode if offered else None)
    raise InvalidRequestError(f"Unsupported tool_choice type '{kind}'.", param="tool_choice.type", code="invalid_value")
