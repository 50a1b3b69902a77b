"""Function tools: accept the Responses flat shape and the Chat-Completions nested shape, echo the flat one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidRequestError, from_validation_errors

__all__ = ["FunctionTool", "chat_tool_choice", "prepare_tools"]


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


def chat_tool_choice(tool_choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """Responses ``tool_choice`` → Chat Completions ``tool_choice``."""
    if tool_choice is None or isinstance(tool_choice, str):
        return tool_choice
    if tool_choice.get("type") == "function" and tool_choice.get("name"):
        return {"type": "function", "function": {"name": tool_choice["name"]}}
    raise InvalidRequestError("Unsupported tool_choice.", param="tool_choice", code="invalid_value")
