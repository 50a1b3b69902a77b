"""Event-order tables shared by the e2e and conformance suites."""

from __future__ import annotations

from collections.abc import Sequence

# A plain text answer, repeated events (the deltas) squashed to one
TEXT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def squash(types: Sequence[str]) -> list[str]:
    """``types`` with runs of the same event type (the deltas) squashed to one."""
    return [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]
