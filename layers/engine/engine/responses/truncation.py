"""``truncation: "auto"``: when the upstream refuses a context as too long, the oldest items are dropped and the
model turn is retried once.

What counts as "too long" is read from the upstream's refusal (``context_length_exceeded``, or a 4xx whose
message speaks of the context length, as OpenAI, vLLM, Fireworks and Bedrock word it). The target is the limit
the message names (less 10 %), else half the context's estimate (``engine.responses.estimate``). Items go
oldest first, a function or custom tool call together with its output (never one without the other), and the
latest user message and everything after it are always kept. ``disabled`` (the default) keeps the upstream's failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from engine.providers import ProviderError

__all__ = ["is_context_overflow", "items_to_drop"]

_OVERFLOW = re.compile(
    r"context[_ ]length|context window|maximum context|too many (?:input )?tokens|(?:prompt|input) is too long"
    r"|exceeds? (?:the )?(?:model'?s? )?(?:maximum|max|context)",
    re.IGNORECASE,
)
_LIMIT = re.compile(
    r"(?:maximum context length|context (?:window|length)|max(?:imum)? tokens?)\D{0,20}?(\d{3,9})", re.IGNORECASE
)
_CALLS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}


def is_context_overflow(exc: ProviderError) -> bool:
    """The upstream refused the request (a 4xx, not a rate limit) because the context is too long."""
    if exc.code == "context_length_exceeded":
        return True
    refused = exc.code == "invalid_prompt" or (exc.status is not None and 400 <= exc.status < 500 and exc.status != 429)
    return refused and bool(_OVERFLOW.search(exc.message))


def _target(exc: ProviderError, current: int) -> int:
    found = _LIMIT.search(exc.message)
    limit = int(found.group(1)) if found else 0
    return int(limit * 0.9) if 0 < limit < current else current // 2


def _groups(items: list[dict[str, Any]], keep_from: int) -> list[list[int]]:
    """Indexes of the droppable items (before ``keep_from``), oldest first, each call with its outputs."""
    outputs: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.get("type") in _CALLS.values():
            outputs.setdefault(str(item.get("call_id")), []).append(index)
    taken: set[int] = set()
    groups: list[list[int]] = []
    for index, item in enumerate(items[:keep_from]):
        if index in taken:
            continue
        group = [index]
        if item.get("type") in _CALLS:
            group += outputs.get(str(item.get("call_id")), [])
        if any(i >= keep_from for i in group):
            break  # a call whose output comes after the kept part stays, and so does everything after it
        taken.update(group)
        groups.append(group)
    return groups


def items_to_drop(
    items: list[dict[str, Any]], exc: ProviderError, measure: Callable[[list[dict[str, Any]]], int]
) -> set[int]:
    """Indexes of the oldest items to drop so that ``measure`` of the rest fits what the refusal says."""
    user_messages = [i for i, item in enumerate(items) if item.get("type", "message") == "message"]
    user_messages = [i for i in user_messages if items[i].get("role") == "user"]
    keep_from = user_messages[-1] if user_messages else len(items)
    target = _target(exc, measure(items))
    dropped: set[int] = set()
    for group in _groups(items, keep_from):
        dropped.update(group)
        if measure([item for i, item in enumerate(items) if i not in dropped]) <= target:
            break
    return dropped
