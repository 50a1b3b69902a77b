"""Conversations (``/v1/conversations``, and ``conversation`` on create): items that are the context of each
response created in them, extended with its input and output when it completes.

Decisions: ``conversation`` with ``store: false`` is a 400 (the turn would have to be stored in the
conversation, which ``store: false`` forbids); with ``background: true`` it is a 400 for now (background runs
do not append to conversations yet). An unknown conversation is a 404 (param ``conversation``). Only
``completed`` and ``incomplete`` responses join their conversation; a failed one leaves it unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from engine.errors import InvalidRequestError, NotFoundError
from engine.ids import new_id
from engine.models.conversations import (
    ConversationDeleted,
    ConversationItemList,
    ConversationResource,
)
from engine.models.items import InputItem
from engine.models.request import ResponseCreateParams
from engine.models.response import ConversationRef, Response
from engine.observability import logger
from engine.responses.input import normalize_input
from engine.storage import get_conversation_store

__all__ = [
    "add_items",
    "append_to_conversation",
    "conversation_id",
    "conversation_items",
    "conversation_ref",
    "create_conversation",
    "delete_conversation",
    "delete_item",
    "get_conversation",
    "get_item",
    "list_items",
    "update_conversation",
]


def not_found(conversation_id: str, param: str = "conversation_id") -> NotFoundError:
    return NotFoundError(f"Conversation with id '{conversation_id}' not found.", param=param)


def conversation_id(params: ResponseCreateParams) -> str | None:
    """The id named by ``conversation`` (a string or ``{"id": …}``), or None."""
    value = params.conversation
    if value is None:
        return None
    if isinstance(value, str):
        found: Any = value
    else:
        found = value.get("id")
    if not isinstance(found, str) or not found:
        raise InvalidRequestError(
            "Invalid value for 'conversation': expected a conversation id or {\"id\": …}.", param="conversation"
        )
    return found


def conversation_ref(params: ResponseCreateParams) -> ConversationRef | None:
    """What the response echoes as ``conversation``."""
    found = conversation_id(params)
    return ConversationRef(id=found) if found is not None else None


# --- conversation on create ------------------------------------------------------------------------------------


async def conversation_items(params: ResponseCreateParams, tenant: str) -> list[dict[str, Any]]:
    """The items of the request's conversation, oldest first (none without one)."""
    found = conversation_id(params)
    if found is None:
        return []
    if params.store is False:
        raise InvalidRequestError(
            "conversation requires store: a response in a conversation is stored as part of it.", param="store"
        )
    if params.background:
        raise InvalidRequestError(
            "conversation cannot be used with background=true on this server yet.", param="background"
        )
    items = await asyncio.to_thread(get_conversation_store().items, tenant, found)
    if items is None:
        raise not_found(found, param="conversation")
    return items


async def append_to_conversation(
    tenant: str, params: ResponseCreateParams, response: Response, input_items: list[dict[str, Any]]
) -> None:
    """After a response completes in a conversation: its input and output join the conversation's items."""
    found = conversation_id(params)
    if found is None or response.status not in ("completed", "incomplete"):
        return
    items = [*input_items, *(item.model_dump() for item in response.output)]
    if not await asyncio.to_thread(get_conversation_store().append, tenant, found, items):
        logger.warning("conversation gone before its response was appended", extra={"conversation_id": found})


# --- /v1/conversations -----------------------------------------------------------------------------------------


def _resource(record: dict[str, Any]) -> ConversationResource:
    return ConversationResource.model_validate(record)


def _normalized(items: list[InputItem] | None) -> list[dict[str, Any]]:
    normalized = normalize_input(items)
    for index, item in enumerate(normalized):
        if item.get("type") == "item_reference":
            raise InvalidRequestError(
                "item_reference items cannot be added to a conversation.", param=f"items[{index}]"
            )
    get_conversation_store().check_items(normalized)
    return normalized


def create_conversation(
    tenant: str, items: list[InputItem] | None, metadata: dict[str, str] | None
) -> ConversationResource:
    record = get_conversation_store().create(tenant, new_id("conv"), metadata or {}, _normalized(items))
    return _resource(record)


def get_conversation(tenant: str, conversation_id: str) -> ConversationResource:
    record = get_conversation_store().get(tenant, conversation_id)
    if record is None:
        raise not_found(conversation_id)
    return _resource(record)


def update_conversation(tenant: str, conversation_id: str, metadata: dict[str, str]) -> ConversationResource:
    record = get_conversation_store().update_metadata(tenant, conversation_id, metadata)
    if record is None:
        raise not_found(conversation_id)
    return _resource(record)


def delete_conversation(tenant: str, conversation_id: str) -> ConversationDeleted:
    if not get_conversation_store().delete(tenant, conversation_id):
        raise not_found(conversation_id)
    return ConversationDeleted(id=conversation_id)


def _item_list(data: list[dict[str, Any]], has_more: bool) -> ConversationItemList:
    return ConversationItemList(
        data=data,
        first_id=data[0].get("id") if data else None,
        last_id=data[-1].get("id") if data else None,
        has_more=has_more,
    )


def list_items(
    tenant: str, conversation_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
) -> ConversationItemList:
    page = get_conversation_store().list_items(tenant, conversation_id, limit=limit, order=order, after=after)
    if page is None:
        raise not_found(conversation_id)
    return _item_list(page.data, page.has_more)


def add_items(tenant: str, conversation_id: str, items: list[InputItem]) -> ConversationItemList:
    normalized = _normalized(items)
    if not get_conversation_store().append(tenant, conversation_id, normalized):
        raise not_found(conversation_id)
    return _item_list(normalized, False)


def _item_not_found(item_id: str) -> NotFoundError:
    return NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")


def get_item(tenant: str, conversation_id: str, item_id: str) -> dict[str, Any]:
    found = get_conversation_store().get_item(tenant, conversation_id, item_id)
    if found is False:
        raise not_found(conversation_id)
    if found is None:
        raise _item_not_found(item_id)
    return found


def delete_item(tenant: str, conversation_id: str, item_id: str) -> ConversationResource:
    store = get_conversation_store()
    deleted = store.delete_item(tenant, conversation_id, item_id)
    if deleted is None:
        raise not_found(conversation_id)
    if not deleted:
        raise _item_not_found(item_id)
    return get_conversation(tenant, conversation_id)
