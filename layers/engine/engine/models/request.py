"""``POST /v1/responses`` request body (``ResponseCreateParams`` in the SDK), validated before anything runs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from engine.models.items import InputItem
from engine.models.json_schema import check_strict_schema
from engine.models.shared import Metadata, Reasoning, ResponseTextConfig, StreamOptions, TextFormat
from engine.models.tools import ConversationParam, PromptParamDict, ToolChoiceParam, ToolParam

__all__ = [
    "BackgroundOptions",
    "ContextManagement",
    "Reasoning",
    "ResponseCreateParams",
    "ResponseTextConfig",
    "StreamOptions",
    "TextFormat",
]

_INT32 = 2**31 - 1

Includable = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]


class BackgroundOptions(BaseModel):
    """``background_options`` (OpenAI, late 2026): accepted and echoed. A run here starts at once, which meets
    every completion window."""

    model_config = ConfigDict(strict=True, extra="ignore")

    completion_window: Literal["soonest", "2h", "8h"] | None = None
    continuation_id: str | None = None


class ContextManagement(BaseModel):
    """One ``context_management`` entry: compact the context before the model turn once its token estimate
    passes ``compact_threshold``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    type: Literal["compaction"]
    compact_threshold: int | None = Field(default=None, ge=1)


class TextFormatParam(TextFormat):
    """``text.format`` as requested: a strict ``json_schema`` must be a schema this server can apply (checked
    here, not when the answer is already generated; stored responses are not re-checked)."""

    @model_validator(mode="after")
    def _strict_schema_applies(self) -> TextFormatParam:
        if self.type == "json_schema" and self.strict and self.schema_ is not None:
            try:
                check_strict_schema(self.schema_)
            except ValueError as exc:
                # raised as a nested error so that param names the schema: text.format.schema
                detail = {"detail": f"JSON schema '{self.name}': {exc}"}
                error = PydanticCustomError("invalid_value", "{detail}", detail)
                line = InitErrorDetails(type=error, loc=("schema",), input=self.schema_)
                raise ValidationError.from_exception_data("TextFormat", [line]) from None
        return self


class ResponseTextConfigParam(ResponseTextConfig):
    format: TextFormatParam = Field(default_factory=TextFormatParam)


class ResponseCreateParams(BaseModel):
    """Strictly typed (a string where a number belongs is a 400); fields newer than ours are kept in
    ``model_extra`` and ignored, as OpenAI's own clients send fields ahead of any spec copy."""

    model_config = ConfigDict(strict=True, extra="allow")

    model: str = Field(min_length=1)
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1)
    store: bool | None = True
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    background: bool | None = False
    background_options: BackgroundOptions | None = None
    context_management: list[ContextManagement] | None = Field(default=None, min_length=1)
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # upper bounds: what a model or a loop could use, and what DynamoDB's numbers hold
    max_output_tokens: int | None = Field(default=None, ge=16, le=_INT32)
    max_tool_calls: int | None = Field(default=None, ge=1, le=_INT32)
    parallel_tool_calls: bool | None = True
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = "auto"
    text: ResponseTextConfigParam | None = None
    reasoning: Reasoning | None = None
    truncation: Literal["auto", "disabled"] | None = "disabled"
    include: list[Includable] | None = None
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=64)
    prompt_cache_key: str | None = Field(default=None, max_length=64)
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"] | None = "auto"
    conversation: ConversationParam | None = None
    prompt: PromptParamDict | None = None
