"""Shapes shared by requests and responses (``text``, ``reasoning``, ``stream_options``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

__all__ = ["Reasoning", "ResponseTextConfig", "StreamOptions", "TextFormat"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextFormat(_Strict):
    """``text.format``; echoed with only the keys that apply (``{"type": "text"}`` by default)."""

    type: Literal["text", "json_schema", "json_object"] = "text"
    name: str | None = Field(default=None, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True, serialize_by_alias=True)

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> Any:
        return {k: v for k, v in handler(self).items() if v is not None}


class ResponseTextConfig(_Strict):
    format: TextFormat = Field(default_factory=TextFormat)
    verbosity: Literal["low", "medium", "high"] | None = "medium"


class Reasoning(_Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(_Strict):
    include_obfuscation: bool | None = None
