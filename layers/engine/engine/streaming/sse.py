"""Server-sent events framing of stream events: what the streaming edge writes to the wire."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.models.events import ResponseStreamEvent

__all__ = ["SSE_DONE", "sse_encode"]

# the frame that ends a stream, after the terminal event (as OpenAI sends it)
SSE_DONE = b"data: [DONE]\n\n"


def sse_encode(event: ResponseStreamEvent) -> bytes:
    """One SSE frame: ``event:`` equal to ``data.type`` and one single-line ``data:``."""
    return b"event: " + event.type.encode() + b"\ndata: " + event.model_dump_json().encode() + b"\n\n"
