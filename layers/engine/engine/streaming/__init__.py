"""Stream events: the event builder (``stream.ResponseStream``), the tool calls of a turn (``calls``) and the SSE
framing (``sse``).

``ResponseStream`` is the only place that orders lifecycle events and assigns ``sequence_number``; the
non-streamed answer is the ``Response`` it folded the same events into, so both paths agree.
"""

from __future__ import annotations

from engine.streaming.calls import CallKind, Classifier, TurnCall, TurnResult
from engine.streaming.sse import SSE_DONE, sse_encode
from engine.streaming.stream import ResponseStream

__all__ = ["SSE_DONE", "CallKind", "Classifier", "ResponseStream", "TurnCall", "TurnResult", "sse_encode"]
