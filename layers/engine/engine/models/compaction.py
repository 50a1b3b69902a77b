"""``POST /v1/responses/compact``: its request body and the compacted response (``CompactedResponse`` in the
SDK)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.models.items import InputItem
from engine.models.response import ResponseUsage

__all__ = ["CompactedResponse", "ResponseCompactParams"]


class ResponseCompactParams(BaseModel):
    """``model`` is required (a 400 without it); the context is ``input`` and/or ``previous_response_id``.
    Prompt-cache fields go to the upstream where it takes them; fields newer than ours are ignored."""

    model_config = ConfigDict(strict=True, extra="allow")

    model: str = Field(min_length=1)
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1)
    prompt_cache_key: str | None = Field(default=None, max_length=64)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"] | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)


class CompactedResponse(BaseModel):
    """The compacted window: the retained user messages, then exactly one ``compaction`` item."""

    id: str
    object: Literal["response.compaction"] = "response.compaction"
    created_at: int
    output: list[dict[str, Any]]
    usage: ResponseUsage
