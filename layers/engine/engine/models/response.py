"""The ``Response`` object: every field the spec requires, always present (responses-spec.md §3.1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from engine.models.items import ResponseOutputItem
from engine.models.shared import Reasoning, ResponseTextConfig

__all__ = [
    "IncompleteDetails",
    "InputTokensDetails",
    "OutputTokensDetails",
    "Response",
    "ResponseDeleted",
    "ResponseError",
    "ResponseItemList",
    "ResponseList",
    "ResponseStatus",
    "ResponseUsage",
]

ResponseStatus = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class ResponseError(BaseModel):
    """Why a response failed. ``type`` is the error class as in OpenAI's envelope (``server_error``,
    ``invalid_request_error``, ``requests``); the upstream's Retry-After is kept in memory only, for the
    foreground answer's header."""

    code: str
    message: str
    type: str = "server_error"
    _retry_after: float | None = PrivateAttr(default=None)

    @property
    def retry_after(self) -> float | None:
        return self._retry_after


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter", "max_messages", "steered"]


class ConversationRef(BaseModel):
    id: str


class Response(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus = "in_progress"
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | list[dict[str, Any]] | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[ResponseOutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: Reasoning = Field(default_factory=Reasoning)
    service_tier: str = "default"
    store: bool = True
    background: bool = False
    # echoed only when the request set it (newer than the SDK types many clients validate against)
    background_options: dict[str, Any] | None = Field(default=None, exclude_if=lambda value: value is None)
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    text: ResponseTextConfig = Field(default_factory=ResponseTextConfig)
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    conversation: ConversationRef | None = None
    prompt: dict[str, Any] | None = None


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: Literal[True] = True


class ResponseItemList(BaseModel):
    """``GET /v1/responses/{id}/input_items``: a cursor page of stored items."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ResponseList(BaseModel):
    """``GET /v1/responses``: stored responses, newest first."""

    object: Literal["list"] = "list"
    data: list[Response]
    first_id: str | None
    last_id: str | None
    has_more: bool
