"""Compaction: the upstream model summarizes a context, and the summary travels as one ``compaction`` item.

The item's ``encrypted_content`` is the summary sealed like reasoning (``engine.sealing``: AES-256-GCM, bound
to the tenant and to its purpose, named by key id), so a client can neither read nor forge it. Sent back (by
value, or in a chain), it is opened and the model is shown the summary in place of what it replaced
(``engine.responses.input.compaction_window``): the user messages are retained, everything else before the
item is not sent again. Used by ``POST /v1/responses/compact`` and by ``context_management`` on create (before
a model turn whose context's token estimate passes ``compact_threshold``; the item is streamed as
``output_item.added`` → ``response.compaction.compacting`` → ``output_item.done``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.ids import new_id
from engine.models.items import ResponseCompactionItem
from engine.models.request import ContextManagement
from engine.providers import ChatRequest, Provider, ProviderError
from engine.providers.base import TextDelta, Usage
from engine.responses.input import compaction_window, to_chat_messages
from engine.sealing import open_sealed, seal

__all__ = [
    "COMPACTION_PROMPT",
    "DEFAULT_COMPACT_THRESHOLD",
    "Compaction",
    "compact_items",
    "compact_threshold",
    "open_summaries",
    "retained_messages",
]

# context_management entries without compact_threshold: compact past this many (estimated) tokens
DEFAULT_COMPACT_THRESHOLD = 200_000

# The request the upstream answers with the summary, after the whole context it summarizes.
COMPACTION_PROMPT = (
    "Context compaction: the conversation above is about to be replaced by a summary that you write now. "
    "Write it for yourself, to continue this conversation from it without the original: the user's goals and "
    "requests (the latest one above all), decisions and facts established, names, numbers, identifiers and "
    "code that matter, the results of tool calls, and what remains to be done. Be complete but concise; write "
    "only the summary, with no preamble."
)


@dataclass(frozen=True, slots=True)
class Compaction:
    """The outcome of one compaction pass."""

    item: ResponseCompactionItem
    summary: str
    retained: list[dict[str, Any]]
    usage: Usage
    upstream_seconds: float = 0.0


def compact_threshold(entries: Sequence[ContextManagement] | None) -> int | None:
    """The token estimate past which a create compacts before a model turn (None: never)."""
    thresholds = [e.compact_threshold or DEFAULT_COMPACT_THRESHOLD for e in entries or () if e.type == "compaction"]
    return min(thresholds) if thresholds else None


def retained_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user messages a compaction keeps: those the model sees in ``items`` (earlier compactions
    included)."""
    return [
        item
        for item in compaction_window(items)
        if item.get("type", "message") == "message" and item.get("role") == "user"
    ]


def open_summaries(items: list[dict[str, Any]], tenant: str, *, first_input: int) -> dict[str, str]:
    """The summary of every ``compaction`` item in a context, by its sealed blob. Items from ``first_input``
    on are the request's own input; one that was not sealed by this deployment for this tenant is a 400
    naming it (earlier ones come from the chain, where they were checked when they arrived)."""
    summaries: dict[str, str] = {}
    for index, item in enumerate(items):
        if item.get("type") != "compaction":
            continue
        blob = str(item.get("encrypted_content") or "")
        where = index - first_input
        param = f"input[{where}].encrypted_content" if where >= 0 else "previous_response_id"
        summaries[blob] = open_sealed(blob, tenant, "compaction", param=param)
    return summaries


async def compact_items(
    *,
    provider: Provider,
    chat: ChatRequest,
    instructions: str | None,
    items: list[dict[str, Any]],
    tenant: str,
    summaries: dict[str, str],
    model_name: Callable[[dict[str, Any]], str] | None = None,
) -> Compaction:
    """Ask the upstream for a summary of ``items`` (as the model sees them) and seal it into a compaction item.
    Raises ``ProviderError`` when the upstream fails or answers nothing."""
    if model_name is None:
        messages = to_chat_messages(instructions, items, summaries=summaries)
    else:
        messages = to_chat_messages(instructions, items, model_name, summaries=summaries)
    messages.append({"role": "user", "content": COMPACTION_PROMPT})
    # a plain-text answer: no tools, no structured output, no token cap meant for the answer
    request = replace(
        chat.with_turn(messages=messages, tools=[], tool_choice=None), response_format=None, max_output_tokens=None
    )
    text: list[str] = []
    input_tokens = output_tokens = cached = reasoning = 0
    started = time.perf_counter()
    async for delta in provider.stream(request):
        if isinstance(delta, TextDelta):
            text.append(delta.text)
        elif isinstance(delta, Usage):
            input_tokens += delta.input_tokens
            output_tokens += delta.output_tokens
            cached += delta.cached_tokens
            reasoning += delta.reasoning_tokens
    summary = "".join(text).strip()
    if not summary:
        raise ProviderError("The upstream model returned an empty summary, so the context was not compacted.")
    item = ResponseCompactionItem(id=new_id("cmp"), encrypted_content=seal(summary, tenant, "compaction"))
    return Compaction(
        item=item,
        summary=summary,
        retained=retained_messages(items),
        usage=Usage(input_tokens, output_tokens, cached, reasoning),
        upstream_seconds=time.perf_counter() - started,
    )
