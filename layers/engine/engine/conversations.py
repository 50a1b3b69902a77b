"""Conversations (``/v1/conversations``, and ``conversation`` on create): items that are the context of each
response created in them, extended with its input and output when it completes."""

from __future__ import annotations

from typing import Any

from .errors import InvalidRequestError
from .models.request import ResponseCreateParams
from .models.response import Response

__all__ = ["append_to_conversation", "conversation_items"]


async def conversation_items(params: ResponseCreateParams, tenant: str) -> list[dict[str, Any]]:
    """The items of the request's conversation, oldest first (none without one)."""
    if params.conversation is not None:
        raise InvalidRequestError("Conversations are not available on this server yet.", param="conversation")
    return []


async def append_to_conversation(
    tenant: str, params: ResponseCreateParams, response: Response, input_items: list[dict[str, Any]]
) -> None:
    """After a response completes in a conversation: its input and output join the conversation's items."""
    return None
