"""Function tools: accept the Responses flat shape and the Chat-Completions nested shape, echo the flat one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import from_validation_errors

__all__ = ["CustomTool", "FunctionTool", "parse_custom_tool", "parse_function_tool", "validate_tool"]


class FunctionTool(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: str = "function"
    name: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.:-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = True

    def to_chat(self, chat_name: str | None = None) -> dict[str, Any]:
        function: dict[str, Any] = {"name": chat_name or self.name, "parameters": self.parameters or {"type": "object"}}
        if self.description:
            function["description"] = self.description
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}


def validate_tool[M: BaseModel](model: type[M], raw: dict[str, Any], index: int) -> M:
    """``raw`` as ``model``; a validation error becomes a 400 whose ``param`` starts with ``tools[index]``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = from_validation_errors(exc.errors())
        err.param = f"tools[{index}].{err.param}" if err.param else f"tools[{index}]"
        raise err from None


def parse_function_tool(raw: dict[str, Any], index: int) -> FunctionTool:
    """A function tool in the Responses flat shape or the Chat Completions nested shape."""
    flat = {"type": "function", **raw["function"]} if isinstance(raw.get("function"), dict) else raw
    return validate_tool(FunctionTool, flat, index)


class CustomTool(BaseModel):
    """``{"type": "custom"}``: free-form input. Chat Completions upstreams know only JSON functions, so it is
    offered as a function taking one string, ``input``, and its calls come back as ``custom_tool_call`` items."""

    model_config = ConfigDict(strict=True, extra="ignore")

    type: str = "custom"
    name: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.:-]+$")
    description: str | None = None
    format: dict[str, Any] | None = None

    def to_chat(self) -> dict[str, Any]:
        description = self.description or ""
        if self.format and self.format.get("type") == "grammar":
            description += (
                f"\nThe input must follow this {self.format.get('syntax')} grammar:\n{self.format.get('definition')}"
            )
        parameters = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
        function: dict[str, Any] = {"name": self.name, "parameters": parameters}
        if description.strip():
            function["description"] = description.strip()
        return {"type": "function", "function": function}


def parse_custom_tool(raw: dict[str, Any], index: int) -> CustomTool:
    return validate_tool(CustomTool, raw, index)
