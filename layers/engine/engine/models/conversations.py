"""Conversations: ``/v1/conversations`` request bodies and the objects it returns (responses-spec.md §1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.models.items import InputItem
from engine.models.shared import Metadata

__all__ = [
    "ConversationCreateParams",
    "ConversationDeleted",
    "ConversationItemList",
    "ConversationItemsCreateParams",
    "ConversationResource",
    "ConversationUpdateParams",
    "Metadata",
]


class _Params(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ConversationCreateParams(_Params):
    items: list[InputItem] | None = Field(default=None, max_length=20)
    metadata: Metadata | None = None


class ConversationUpdateParams(_Params):
    metadata: Metadata


class ConversationItemsCreateParams(_Params):
    items: list[InputItem] = Field(min_length=1, max_length=20)


class ConversationResource(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    metadata: dict[str, str]
    created_at: int


class ConversationDeleted(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: Literal[True] = True


class ConversationItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
