"""The provider protocol: a chat request in, a stream of normalized provider events out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

__all__ = [
    "ChatRequest",
    "Finish",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
]


@dataclass(slots=True)
class ChatRequest:
    """What every provider needs: Chat-Completions-shaped messages plus sampling settings."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    # passed where the upstream takes them (each provider documents what it does with them)
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # include=["message.output_text.logprobs"]: ask for token log probabilities (and this many alternatives)
    logprobs: bool = False
    top_logprobs: int | None = None

    def with_turn(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: str | dict[str, Any] | None
    ) -> ChatRequest:
        """This request for one model turn: its messages and the tools offered in it."""
        return replace(
            self,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=self.parallel_tool_calls if tools else None,
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    # the tokens of this text with their log probabilities, as the Responses API shapes them (when asked for)
    logprobs: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    arguments: str = ""
    call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # the service tier the upstream reports it used (echoed as the response's service_tier)
    service_tier: str | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


ProviderEvent = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish


class ProviderError(Exception):
    """The upstream failed (status, timeout, broken stream). ``code`` is a ``ResponseError`` code, ``status`` the
    upstream's HTTP status (None for timeouts and broken streams), ``retry_after`` its Retry-After in seconds."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "server_error",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


class Provider(Protocol):
    """Streams one model turn. Raises ``ProviderError``; never returns partial events silently."""

    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]: ...
