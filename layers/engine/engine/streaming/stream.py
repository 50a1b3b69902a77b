"""The event builder: turns provider deltas into the spec's event sequence and keeps the ``Response`` it describes.

``ResponseStream`` is the only place that orders lifecycle events and assigns ``sequence_number`` (from 0, no
gaps). The non-streamed answer is ``ResponseStream.response`` after the same events, so both paths agree.
Event order per item (responses-spec.md §4.3): ``output_item.added`` → ``content_part.added`` → deltas →
``*.done`` → ``content_part.done`` → ``output_item.done``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.ids import new_id
from engine.models.events import (
    ResponseCompactionCompactingEvent,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseCustomToolCallInputDeltaEvent,
    ResponseCustomToolCallInputDoneEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFileSearchCallCompletedEvent,
    ResponseFileSearchCallInProgressEvent,
    ResponseFileSearchCallSearchingEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseMcpCallArgumentsDeltaEvent,
    ResponseMcpCallArgumentsDoneEvent,
    ResponseMcpCallCompletedEvent,
    ResponseMcpCallFailedEvent,
    ResponseMcpCallInProgressEvent,
    ResponseMcpListToolsCompletedEvent,
    ResponseMcpListToolsFailedEvent,
    ResponseMcpListToolsInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseQueuedEvent,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseReasoningTextDeltaEvent,
    ResponseReasoningTextDoneEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from engine.models.items import (
    FileSearchCall,
    McpApprovalRequest,
    McpCall,
    McpListTools,
    ReasoningText,
    ResponseCompactionItem,
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    SummaryText,
)
from engine.models.response import IncompleteDetails, Response, ResponseError, ResponseUsage
from engine.providers.base import ToolCallDelta
from engine.streaming.calls import Classifier, PendingCall, TurnCall, TurnResult, custom_input, unclassified
from engine.streaming.sse import SSE_DONE

__all__ = ["ResponseStream"]


class _OpenText:
    """The message or reasoning item whose text is streaming now."""

    __slots__ = ("index", "item", "logprobs", "text")

    def __init__(self, index: int, item: ResponseOutputMessage | ResponseReasoningItem) -> None:
        self.index = index
        self.item = item
        self.text: list[str] = []
        self.logprobs: list[dict[str, Any]] = []


class ResponseStream:
    """Builds the event sequence of one response and the final ``Response`` from provider deltas."""

    DONE = SSE_DONE

    def __init__(
        self,
        response: Response,
        sequence_start: int = 0,
        seal: Callable[[str], str] | None = None,
        *,
        summarize: bool = False,
    ) -> None:
        self.response = response
        self._seq = sequence_start
        # include=["reasoning.encrypted_content"]: finished reasoning items also carry it sealed
        self._seal = seal
        # reasoning.summary: the upstream's reasoning is also streamed as the item's summary (one part), for
        # clients that read only summaries; it is the reasoning itself, not a separate summary
        self._summarize = summarize
        self._open: _OpenText | None = None
        self._pending: dict[int, PendingCall] = {}
        self._classify: Classifier = unclassified
        self._turn_text: list[str] = []
        # file_search: the finished text of a message -> its file_citation annotations (set by the turn loop)
        self.annotate: Callable[[str], list[dict[str, Any]]] | None = None

    def _stamp[E: ResponseStreamEvent](self, event: E) -> E:
        event.sequence_number = self._seq
        self._seq += 1
        return event

    def _add(self, item: Any) -> tuple[int, ResponseStreamEvent]:
        index = len(self.response.output)
        self.response.output.append(item)
        return index, self._stamp(ResponseOutputItemAddedEvent(output_index=index, item=item.model_dump()))

    def _done(self, index: int, item: Any) -> ResponseStreamEvent:
        return self._stamp(ResponseOutputItemDoneEvent(output_index=index, item=item.model_dump()))

    @property
    def next_sequence_number(self) -> int:
        return self._seq

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> list[ResponseStreamEvent]:
        """``response.created`` then ``response.in_progress`` (``response.queued`` for a background response):
        sent before the upstream's first byte."""
        snapshot = self.response.model_copy(deep=True)
        created = self._stamp(ResponseCreatedEvent(response=snapshot))
        if self.response.status == "queued":
            return [created, self._stamp(ResponseQueuedEvent(response=snapshot))]
        return [created, self._stamp(ResponseInProgressEvent(response=snapshot))]

    def in_progress(self) -> list[ResponseStreamEvent]:
        """A background response leaving the queue."""
        self.response.status = "in_progress"
        return [self._stamp(ResponseInProgressEvent(response=self.response.model_copy(deep=True)))]

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

    def fail(
        self,
        code: str,
        message: str,
        usage: ResponseUsage | None = None,
        *,
        type_: str = "server_error",
        retry_after: float | None = None,
    ) -> list[ResponseStreamEvent]:
        """Close open items as incomplete, mark the response failed and emit the flat ``error`` event."""
        events = self._close_all("incomplete")
        self.response.status = "failed"
        self.response.error = ResponseError(code=code, message=message, type=type_)
        self.response.error._retry_after = retry_after
        self.response.usage = usage or ResponseUsage()
        events.append(self._stamp(ResponseErrorEvent(code=code, message=message)))
        return events

    def abandon(self) -> None:
        """The client went away mid-stream: what was produced is kept, open items incomplete, as ``cancelled``."""
        self._close_all("incomplete")
        self.response.status = "cancelled"

    def terminal(self) -> ResponseStreamEvent:
        """Exactly one of ``response.completed|incomplete|failed``, with the final snapshot."""
        status = self.response.status
        if status == "failed":
            return self._stamp(ResponseFailedEvent(response=self.response))
        if status == "incomplete":
            return self._stamp(ResponseIncompleteEvent(response=self.response))
        return self._stamp(ResponseCompletedEvent(response=self.response))

    # --- one model turn ----------------------------------------------------------------------------------------

    def begin_turn(self, classify: Classifier) -> None:
        self._classify = classify
        self._turn_text = []

    def text(self, delta: str, logprobs: Sequence[dict[str, Any]] = ()) -> list[ResponseStreamEvent]:
        """A piece of the answer; ``logprobs`` (when the request included them) go on the delta and the part."""
        events = self._ensure_open("message")
        assert self._open is not None
        self._open.text.append(delta)
        self._open.logprobs.extend(logprobs)
        self._turn_text.append(delta)
        events.append(
            self._stamp(
                ResponseTextDeltaEvent(
                    item_id=self._open.item.id,
                    output_index=self._open.index,
                    content_index=0,
                    delta=delta,
                    logprobs=list(logprobs),
                )
            )
        )
        return events

    def reasoning(self, delta: str) -> list[ResponseStreamEvent]:
        events = self._ensure_open("reasoning")
        assert self._open is not None
        self._open.text.append(delta)
        item_id, index = self._open.item.id, self._open.index
        events.append(
            self._stamp(
                ResponseReasoningTextDeltaEvent(item_id=item_id, output_index=index, content_index=0, delta=delta)
            )
        )
        if self._summarize:
            events.append(
                self._stamp(
                    ResponseReasoningSummaryTextDeltaEvent(
                        item_id=item_id, output_index=index, summary_index=0, delta=delta
                    )
                )
            )
        return events

    def tool_call(self, delta: ToolCallDelta) -> list[ResponseStreamEvent]:
        """Arguments pass through as they arrive: ``function_call_arguments.delta`` for function tools,
        ``mcp_call_arguments.delta`` for MCP tools; calls that need approval are shown whole at turn end."""
        events = self._close_open()
        pending = self._pending.get(delta.index)
        if pending is None:
            pending = self._pending[delta.index] = PendingCall(delta.call_id)
        if delta.name and not pending.name:
            pending.name = delta.name
        if delta.arguments:
            pending.arguments.append(delta.arguments)
        if pending.call is None and pending.name:
            events.extend(self._open_call(pending))
        elif pending.call is not None and delta.arguments:
            events.extend(self._argument_delta(pending.call, delta.arguments))
        return events

    def _open_call(self, pending: PendingCall) -> list[ResponseStreamEvent]:
        kind, label, name = self._classify(pending.name)
        call = TurnCall(kind, pending.name, "", pending.call_id or new_id("call"))
        pending.call = call
        if kind == "function":
            call.item = ResponseFunctionToolCall(id=new_id("fc"), call_id=call.call_id, name=name, namespace=label)
        elif kind == "custom":
            call.item = ResponseCustomToolCall(id=new_id("ctc"), call_id=call.call_id, name=name)
        elif kind == "mcp":
            call.item = McpCall(id=new_id("mcp"), server_label=label or "", name=name, status="in_progress")
        elif kind == "approval":
            call.item = McpApprovalRequest(id=new_id("mcpr"), server_label=label or "", name=name)
        elif kind == "file_search":
            call.item = FileSearchCall(id=new_id("fs"))
        events: list[ResponseStreamEvent] = []
        if kind in ("function", "custom", "mcp", "file_search"):
            call.index, added = self._add(call.item)
            events.append(added)
        if kind == "file_search":
            assert call.item is not None
            events.append(
                self._stamp(ResponseFileSearchCallInProgressEvent(item_id=call.item.id, output_index=call.index))
            )
        buffered = "".join(pending.arguments)
        if buffered:
            events.extend(self._argument_delta(call, buffered))
        return events

    def _argument_delta(self, call: TurnCall, delta: str) -> list[ResponseStreamEvent]:
        call.arguments += delta
        item = call.item
        if isinstance(item, ResponseFunctionToolCall):
            item.arguments += delta
            return [
                self._stamp(
                    ResponseFunctionCallArgumentsDeltaEvent(item_id=item.id, output_index=call.index, delta=delta)
                )
            ]
        if isinstance(item, McpCall):
            item.arguments += delta
            return [
                self._stamp(ResponseMcpCallArgumentsDeltaEvent(item_id=item.id, output_index=call.index, delta=delta))
            ]
        if isinstance(item, McpApprovalRequest):
            item.arguments += delta
        return []

    def end_turn(self, status: str = "completed") -> tuple[list[ResponseStreamEvent], TurnResult]:
        """Close the turn's text and its calls' arguments. MCP calls stay open until they have run."""
        events = self._close_open(status)
        result = TurnResult(text="".join(self._turn_text))
        for position in sorted(self._pending):
            pending = self._pending[position]
            if pending.call is None:  # a call that never got a name: keep it as a function call
                pending.name = pending.name or "unknown"
                events.extend(self._open_call(pending))
            call = pending.call
            assert call is not None
            item = call.item
            if isinstance(item, ResponseFunctionToolCall):
                item.status = status  # type: ignore[assignment]
                events.append(
                    self._stamp(
                        ResponseFunctionCallArgumentsDoneEvent(
                            item_id=item.id, output_index=call.index, arguments=item.arguments, name=item.name
                        )
                    )
                )
                events.append(self._done(call.index, item))
            elif isinstance(item, ResponseCustomToolCall):
                # offered as a function of one string: its input is known once the JSON arguments are whole
                item.input = custom_input(call.arguments)
                events.append(
                    self._stamp(
                        ResponseCustomToolCallInputDeltaEvent(
                            item_id=item.id, output_index=call.index, delta=item.input
                        )
                    )
                )
                events.append(
                    self._stamp(
                        ResponseCustomToolCallInputDoneEvent(item_id=item.id, output_index=call.index, input=item.input)
                    )
                )
                events.append(self._done(call.index, item))
            elif isinstance(item, McpCall):
                events.append(
                    self._stamp(
                        ResponseMcpCallArgumentsDoneEvent(
                            item_id=item.id, output_index=call.index, arguments=item.arguments
                        )
                    )
                )
            elif isinstance(item, McpApprovalRequest):
                call.index, added = self._add(item)
                events.extend([added, self._done(call.index, item)])
            result.calls.append(call)
        self._pending.clear()
        return events, result

    # --- compaction ----------------------------------------------------------------------------------------------

    def compaction(self, item: ResponseCompactionItem) -> list[ResponseStreamEvent]:
        """A compaction made before a model turn (context_management): ``output_item.added``,
        ``response.compaction.compacting``, ``output_item.done``, sent once the summary is sealed (an item is
        never shown half made)."""
        events = self._close_open()
        index, added = self._add(item)
        compacting = self._stamp(ResponseCompactionCompactingEvent(item_id=item.id, output_index=index))
        return [*events, added, compacting, self._done(index, item)]

    # --- file_search items -------------------------------------------------------------------------------------

    def file_search_searching(self, call: TurnCall, queries: list[str]) -> list[ResponseStreamEvent]:
        item = call.item
        assert isinstance(item, FileSearchCall)
        item.queries, item.status = queries, "searching"
        return [self._stamp(ResponseFileSearchCallSearchingEvent(item_id=item.id, output_index=call.index))]

    def file_search_finished(
        self, call: TurnCall, results: list[dict[str, Any]] | None, *, include_results: bool
    ) -> list[ResponseStreamEvent]:
        """``completed`` (or ``failed`` when ``results`` is None). The results stay on the item for the next
        turn; the ``output_item.done`` shows them only when the request included them."""
        item = call.item
        assert isinstance(item, FileSearchCall)
        item.status, item.results = ("completed", results) if results is not None else ("failed", None)
        shown = item.model_dump()
        if not include_results:
            shown["results"] = None
        return [
            self._stamp(ResponseFileSearchCallCompletedEvent(item_id=item.id, output_index=call.index)),
            self._stamp(ResponseOutputItemDoneEvent(output_index=call.index, item=shown)),
        ]

    # --- MCP items ---------------------------------------------------------------------------------------------

    def mcp_list_started(self, server_label: str) -> tuple[list[ResponseStreamEvent], McpListTools, int]:
        item = McpListTools(id=new_id("mcpl"), server_label=server_label)
        index, added = self._add(item)
        progress = self._stamp(ResponseMcpListToolsInProgressEvent(item_id=item.id, output_index=index))
        return [added, progress], item, index

    def mcp_list_finished(
        self, item: McpListTools, index: int, tools: list[dict[str, Any]], error: str | None
    ) -> list[ResponseStreamEvent]:
        item.tools, item.error = tools, error
        event_type = ResponseMcpListToolsFailedEvent if error else ResponseMcpListToolsCompletedEvent
        return [self._stamp(event_type(item_id=item.id, output_index=index)), self._done(index, item)]

    def mcp_call_approved(
        self, server_label: str, name: str, arguments: str, approval_request_id: str
    ) -> tuple[list[ResponseStreamEvent], TurnCall]:
        """An approved call runs without a model turn; its item goes through the same event sequence."""
        item = McpCall(
            id=new_id("mcp"),
            server_label=server_label,
            name=name,
            status="in_progress",
            approval_request_id=approval_request_id,
        )
        call = TurnCall("mcp", name, "", approval_request_id, item)
        call.index, added = self._add(item)
        events = [added, *self._argument_delta(call, arguments)] if arguments else [added]
        events.append(
            self._stamp(
                ResponseMcpCallArgumentsDoneEvent(item_id=item.id, output_index=call.index, arguments=arguments)
            )
        )
        return events, call

    def mcp_call_running(self, call: TurnCall) -> list[ResponseStreamEvent]:
        assert call.item is not None
        return [self._stamp(ResponseMcpCallInProgressEvent(item_id=call.item.id, output_index=call.index))]

    def mcp_call_finished(
        self, call: TurnCall, output: str | None, error: dict[str, Any] | None
    ) -> list[ResponseStreamEvent]:
        item = call.item
        assert isinstance(item, McpCall)
        item.output, item.error = output, error
        item.status = "failed" if error else "completed"
        event_type = ResponseMcpCallFailedEvent if error else ResponseMcpCallCompletedEvent
        return [self._stamp(event_type(item_id=item.id, output_index=call.index)), self._done(call.index, item)]

    # --- item bookkeeping --------------------------------------------------------------------------------------

    def _ensure_open(self, kind: str) -> list[ResponseStreamEvent]:
        if self._open is not None and self._open.item.type == kind:
            return []
        events = self._close_open()
        item: ResponseOutputMessage | ResponseReasoningItem
        part: dict[str, Any]
        if kind == "message":
            item = ResponseOutputMessage(id=new_id("msg"))
            part = ResponseOutputText(text="").model_dump()
        else:
            item = ResponseReasoningItem(id=new_id("rs"), content=[])
            part = ReasoningText(text="").model_dump()
        index, added = self._add(item)
        self._open = _OpenText(index, item)
        events.append(added)
        events.append(
            self._stamp(ResponseContentPartAddedEvent(item_id=item.id, output_index=index, content_index=0, part=part))
        )
        if kind == "reasoning" and self._summarize:
            summary = SummaryText(text="").model_dump()
            events.append(
                self._stamp(
                    ResponseReasoningSummaryPartAddedEvent(
                        item_id=item.id, output_index=index, summary_index=0, part=summary
                    )
                )
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
        annotated: list[ResponseStreamEvent] = []
        summary: list[ResponseStreamEvent] = []
        if isinstance(item, ResponseOutputMessage):
            final = ResponseOutputText(
                text=text, annotations=self.annotate(text) if self.annotate else [], logprobs=opened.logprobs
            )
            item.content = [final]
            part = final.model_dump()
            done = ResponseTextDoneEvent(
                item_id=item.id, output_index=index, content_index=0, text=text, logprobs=opened.logprobs
            )
            annotated = [
                self._stamp(
                    ResponseOutputTextAnnotationAddedEvent(
                        item_id=item.id, output_index=index, content_index=0, annotation_index=n, annotation=note
                    )
                )
                for n, note in enumerate(final.annotations)
            ]
        else:
            reasoning = ReasoningText(text=text)
            item.content = [reasoning]
            if self._seal is not None:
                item.encrypted_content = self._seal(text)
            part = reasoning.model_dump()
            done = ResponseReasoningTextDoneEvent(item_id=item.id, output_index=index, content_index=0, text=text)
            if self._summarize:
                item.summary = [SummaryText(text=text)]
                summary = [
                    ResponseReasoningSummaryTextDoneEvent(
                        item_id=item.id, output_index=index, summary_index=0, text=text
                    ),
                    ResponseReasoningSummaryPartDoneEvent(
                        item_id=item.id, output_index=index, summary_index=0, part=item.summary[0].model_dump()
                    ),
                ]
        item.status = status  # type: ignore[assignment]
        return [
            *annotated,
            self._stamp(done),
            self._stamp(ResponseContentPartDoneEvent(item_id=item.id, output_index=index, content_index=0, part=part)),
            *(self._stamp(event) for event in summary),
            self._done(index, item),
        ]

    def _close_all(self, status: str) -> list[ResponseStreamEvent]:
        """Whatever is still open (a failure mid-turn, or MCP calls that never ran) is closed here."""
        events: list[ResponseStreamEvent] = []
        if self._pending:
            turn_events, _ = self.end_turn(status)
            events.extend(turn_events)
        events.extend(self._close_open(status))
        for index, item in enumerate(self.response.output):
            if isinstance(item, McpCall) and item.status == "in_progress":
                item.status = "incomplete"
                events.append(self._done(index, item))
            elif isinstance(item, FileSearchCall) and item.status in ("in_progress", "searching"):
                item.status = "incomplete"
                events.append(self._done(index, item))
            elif isinstance(item, ResponseFunctionToolCall) and item.status == "in_progress":
                item.status = status  # type: ignore[assignment]
                events.append(self._done(index, item))
        return events
