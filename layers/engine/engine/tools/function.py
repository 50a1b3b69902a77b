"""Function tools: accept the Responses flat shape and the Chat-Completions nested shape, echo the flat one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import from_validation_errors

__all__ = ["FunctionTool", "parse_function_tool"]


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


def parse_function_tool(raw: dict[str, Any], index: int) -> FunctionTool:
    """A function tool in the Responses flat shape or the Chat Completions nested shape."""
    flat = {"type": "function", **raw["function"]} if isinstance(raw.get("function"), dict) else raw
    try:
        return FunctionTool.model_validate(flat)
    except ValidationError as exc:
        err = from_validation_errors(exc.errors())
        err.param = f"tools[{index}].{err.param}" if err.param else f"tools[{index}]"
        raise err from None
