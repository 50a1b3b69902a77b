"""Shapes shared by requests and responses (``text``, ``reasoning``, ``stream_options``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_serializer, model_validator

__all__ = ["Metadata", "Reasoning", "ResponseTextConfig", "StreamOptions", "TextFormat"]


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

    @model_validator(mode="after")
    def _json_schema_needs_a_schema(self) -> TextFormat:
        if self.type == "json_schema" and (not self.name or self.schema_ is None):
            raise ValueError("text.format of type 'json_schema' needs a 'name' and a 'schema'")
        return self

    @model_serializer(mode="wrap")
    def _echo(self, handler: Any) -> Any:
        data = handler(self)
        if self.type == "json_schema":
            # the spec's json_schema format always carries description (nullable) and strict (default false)
            return {**data, "strict": bool(self.strict)}
        return {k: v for k, v in data.items() if v is not None}

    def to_chat(self) -> dict[str, Any] | None:
        """Chat Completions ``response_format`` (None for plain text)."""
        if self.type == "json_object":
            return {"type": "json_object"}
        if self.type == "json_schema":
            spec: dict[str, Any] = {"name": self.name, "schema": self.schema_, "strict": bool(self.strict)}
            if self.description:
                spec["description"] = self.description
            return {"type": "json_schema", "json_schema": spec}
        return None


class ResponseTextConfig(_Strict):
    format: TextFormat = Field(default_factory=TextFormat)
    verbosity: Literal["low", "medium", "high"] | None = "medium"


class Reasoning(_Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(_Strict):
    include_obfuscation: bool | None = None


def _metadata_limits(value: dict[str, str]) -> dict[str, str]:
    """OpenAI's limits on ``metadata``: at most 16 keys, keys up to 64 characters, values up to 512."""
    if len(value) > 16:
        raise ValueError("metadata can have at most 16 keys")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(f"metadata key '{key[:20]}…' is longer than 64 characters")
        if len(item) > 512:
            raise ValueError(f"metadata value for key '{key}' is longer than 512 characters")
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_metadata_limits)]
