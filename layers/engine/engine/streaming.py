"""Stream events: turns provider deltas into the spec's event sequence and keeps the ``Response`` it describes.

``ResponseStream`` is the only place that orders lifecycle events and assigns ``sequence_number`` (from 0, no
gaps). The non-streamed answer is ``ResponseStream.response`` after the same events, so both paths agree.
Event order per item (responses-spec.md §4.3): ``output_item.added`` → ``content_part.added`` → deltas →
``*.done`` → ``content_part.done`` → ``output_item.done``.
"""

from __future__ import annotations

import time
from typing import Any

from .ids import new_id
from .models.events import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseReasoningTextDeltaEvent,
    ResponseReasoningTextDoneEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from .models.items import (
    ReasoningText,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from .models.response import IncompleteDetails, Response, ResponseError, ResponseUsage
from .providers.base import ToolCallDelta

__all__ = ["ResponseStream", "sse_encode"]

_SSE_DONE = b"data: [DONE]\n\n"


def sse_encode(event: ResponseStreamEvent) -> bytes:
    """One SSE frame: ``event:`` equal to ``data.type`` and one single-line ``data:``."""
    return b"event: " + event.type.encode() + b"\ndata: " + event.model_dump_json().encode() + b"\n\n"


class _OpenText:
    """The message or reasoning item whose text is streaming now."""

    __slots__ = ("index", "item", "text")

    def __init__(self, index: int, item: ResponseOutputMessage | ResponseReasoningItem) -> None:
        self.index = index
        self.item = item
        self.text: list[str] = []


class ResponseStream:
    """Builds the event sequence of one response and the final ``Response`` from provider deltas."""

    DONE = _SSE_DONE

    def __init__(self, response: Response) -> None:
        self.response = response
        self._seq = 0
        self._open: _OpenText | None = None
        self._calls: dict[int, tuple[int, ResponseFunctionToolCall]] = {}

    def _stamp[E: ResponseStreamEvent](self, event: E) -> E:
        event.sequence_number = self._seq
        self._seq += 1
        return event

    @property
    def next_sequence_number(self) -> int:
        return self._seq

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> list[ResponseStreamEvent]:
        """``response.created`` then ``response.in_progress``: sent before the upstream's first byte."""
        snapshot = self.response.model_copy(deep=True)
        return [
            self._stamp(ResponseCreatedEvent(response=snapshot)),
            self._stamp(ResponseInProgressEvent(response=snapshot)),
        ]

    def finish(self, usage: ResponseUsage | None, incomplete_reason: str | None = None) -> list[ResponseStreamEvent]:
        """Close every open item and settle the status; the terminal event comes from ``terminal()``."""
        events = self._close_all("incomplete" if incomplete_reason else "completed")
        self.response.usage = usage or ResponseUsage()
        if incomplete_reason:
            self.response.status = "incomplete"
            self.response.incomplete_details = IncompleteDetails(reason=incomplete_reason)
        else:
            self.response.status = "completed"
            self.response.completed_at = int(time.time())
        return events

    def fail(self, code: str, message: str, usage: ResponseUsage | None = None) -> list[ResponseStreamEvent]:
        """Close open items as incomplete, mark the response failed and emit the flat ``error`` event."""
        events = self._close_all("incomplete")
        self.response.status = "failed"
        self.response.error = ResponseError(code=code, message=message)
        self.response.usage = usage or ResponseUsage()
        events.append(self._stamp(ResponseErrorEvent(code=code, message=message)))
        return events

    def terminal(self) -> ResponseStreamEvent:
        """Exactly one of ``response.completed|incomplete|failed``, with the final snapshot."""
        status = self.response.status
        if status == "failed":
            return self._stamp(ResponseFailedEvent(response=self.response))
        if status == "incomplete":
            return self._stamp(ResponseIncompleteEvent(response=self.response))
        return self._stamp(ResponseCompletedEvent(response=self.response))

    # --- deltas ------------------------------------------------------------------------------------------------

    def text(self, delta: str) -> list[ResponseStreamEvent]:
        events = self._ensure_open("message")
        assert self._open is not None
        self._open.text.append(delta)
        events.append(
            self._stamp(
                ResponseTextDeltaEvent(
                    item_id=self._open.item.id, output_index=self._open.index, content_index=0, delta=delta
                )
            )
        )
        return events

    def reasoning(self, delta: str) -> list[ResponseStreamEvent]:
        events = self._ensure_open("reasoning")
        assert self._open is not None
        self._open.text.append(delta)
        events.append(
            self._stamp(
                ResponseReasoningTextDeltaEvent(
                    item_id=self._open.item.id, output_index=self._open.index, content_index=0, delta=delta
                )
            )
        )
        return events

    def tool_call(self, delta: ToolCallDelta) -> list[ResponseStreamEvent]:
        """Function-call arguments pass through as they arrive (``function_call_arguments.delta``)."""
        events = self._close_open()
        entry = self._calls.get(delta.index)
        if entry is None:
            item = ResponseFunctionToolCall(
                id=new_id("fc"), call_id=delta.call_id or new_id("call"), name=delta.name or ""
            )
            index = len(self.response.output)
            self.response.output.append(item)
            entry = self._calls[delta.index] = (index, item)
            events.append(self._stamp(ResponseOutputItemAddedEvent(output_index=index, item=item.model_dump())))
        index, item = entry
        if delta.name and not item.name:
            item.name = delta.name
        if delta.arguments:
            item.arguments += delta.arguments
            events.append(
                self._stamp(
                    ResponseFunctionCallArgumentsDeltaEvent(item_id=item.id, output_index=index, delta=delta.arguments)
                )
            )
        return events

    # --- item bookkeeping --------------------------------------------------------------------------------------

    def _ensure_open(self, kind: str) -> list[ResponseStreamEvent]:
        if self._open is not None and self._open.item.type == kind:
            return []
        events = self._close_open()
        index = len(self.response.output)
        item: ResponseOutputMessage | ResponseReasoningItem
        part: dict[str, Any]
        if kind == "message":
            item = ResponseOutputMessage(id=new_id("msg"))
            part = ResponseOutputText(text="").model_dump()
        else:
            item = ResponseReasoningItem(id=new_id("rs"), content=[])
            part = ReasoningText(text="").model_dump()
        self.response.output.append(item)
        self._open = _OpenText(index, item)
        events.append(self._stamp(ResponseOutputItemAddedEvent(output_index=index, item=item.model_dump())))
        events.append(
            self._stamp(ResponseContentPartAddedEvent(item_id=item.id, output_index=index, content_index=0, part=part))
        )
        return events

    def _close_open(self, status: str = "completed") -> list[ResponseStreamEvent]:
        opened, self._open = self._open, None
        if opened is None:
            return []
        text = "".join(opened.text)
        item, index = opened.item, opened.index
        part: dict[str, Any]
        done: ResponseStreamEvent
        if isinstance(item, ResponseOutputMessage):
            final = ResponseOutputText(text=text)
            item.content = [final]
            part = final.model_dump()
            done = ResponseTextDoneEvent(item_id=item.id, output_index=index, content_index=0, text=text)
        else:
            reasoning = ReasoningText(text=text)
            item.content = [reasoning]
            part = reasoning.model_dump()
            done = ResponseReasoningTextDoneEvent(item_id=item.id, output_index=index, content_index=0, text=text)
        item.status = status  # type: ignore[assignment]
        return [
            self._stamp(done),
            self._stamp(ResponseContentPartDoneEvent(item_id=item.id, output_index=index, content_index=0, part=part)),
            self._stamp(ResponseOutputItemDoneEvent(output_index=index, item=item.model_dump())),
        ]

    def _close_all(self, status: str) -> list[ResponseStreamEvent]:
        events = self._close_open(status)
        for index, item in sorted(self._calls.values(), key=lambda entry: entry[0]):
            item.status = status  # type: ignore[assignment]
            events.append(
                self._stamp(
                    ResponseFunctionCallArgumentsDoneEvent(
                        item_id=item.id, output_index=index, arguments=item.arguments, name=item.name
                    )
                )
            )
            events.append(self._stamp(ResponseOutputItemDoneEvent(output_index=index, item=item.model_dump())))
        self._calls.clear()
        return events
