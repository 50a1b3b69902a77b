"""The turn loop: a model turn, the MCP calls it asked for (run here), the next turn — until the model answers,
hands function calls to the client, or waits for an approval.

Bounded by ``max_tool_calls`` (further calls are ignored and the model is asked to answer) and the configured
turn limit. Everything the loop does reaches the client as stream events through ``ResponseStream``. The
loop's own state is small (``LoopState``) and the conversation is rebuilt from items each turn, so a background
run can stop after any turn and carry on in another Lambda invocation.

The loop reads a prepared create through ``LoopInputs`` and never writes to it: what it produced besides the events
(usage, finish reason, time spent waiting on the upstream) comes back as a ``LoopOutcome`` that the caller applies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import from_json

from engine.models.events import ResponseStreamEvent
from engine.models.items import McpCall
from engine.models.json_schema import schema_mismatch
from engine.models.request import ResponseCreateParams
from engine.models.response import InputTokensDetails, OutputTokensDetails, ResponseUsage
from engine.observability import logger
from engine.providers import ChatRequest, Provider, ProviderError
from engine.providers.base import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from engine.responses.compaction import compact_items, compact_threshold
from engine.responses.estimate import estimate_tokens
from engine.responses.failures import failure_of
from engine.responses.input import to_chat_messages
from engine.responses.truncation import is_context_overflow, items_to_drop
from engine.sealing import open_sealed
from engine.settings import get_settings
from engine.streaming import CallKind, ResponseStream, TurnCall
from engine.tools import ToolSet

if TYPE_CHECKING:
    from engine.tools.mcp import McpCallResult, McpConnection

__all__ = ["Approval", "LoopInputs", "LoopOutcome", "LoopState", "TurnLoop"]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}

Checkpoint = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Approval:
    """An ``mcp_approval_response`` of this request, with the request it answers."""

    request: dict[str, Any]
    approve: bool


@dataclass(frozen=True, slots=True)
class LoopInputs:
    """What the loop reads from a prepared create (``CreateRun.loop_inputs()``); the loop never writes to the create.

    ``tools`` is the request's tool set: the prelude records the MCP listings it makes there, so later turns offer
    the listed tools."""

    params: ResponseCreateParams
    chat: ChatRequest
    provider: Provider
    tools: ToolSet
    approvals: Sequence[Approval]
    # the chain's items and this request's input: what every turn's messages start from
    context_items: Sequence[dict[str, Any]]
    # the summaries of the context's compaction items, by sealed blob (what the model is shown in their place)
    summaries: Mapping[str, str]
    # whose response this is: compaction seals (and later opens) its summaries for this tenant, and the
    # file_search tool searches this tenant's vector stores
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """What a loop produced besides its events, for the caller to apply."""

    done: bool
    finish: str | None
    usage: ResponseUsage
    # wall time spent waiting on the upstream's stream (the rest of a request's time is this server's overhead)
    upstream_seconds: float


class LoopState(BaseModel):
    """Everything the loop must remember between turns (stored between background steps)."""

    prelude_done: bool = False
    turns: int = 0
    executed: int = 0
    tool_choice: str | dict[str, Any] | None = "auto"
    answer_now: bool = False
    done: bool = False
    finish: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # context_management: the turn before which the context was last compacted (one compaction per turn)
    compacted_turn: int = -1
    # truncation "auto": ids of the oldest items no longer sent, after the upstream refused the context
    dropped: list[str] = []

    def add(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_tokens += usage.cached_tokens
        self.reasoning_tokens += usage.reasoning_tokens

    def usage(self) -> ResponseUsage:
        return ResponseUsage(
            input_tokens=self.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=self.cached_tokens),
            output_tokens=self.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=self.reasoning_tokens),
            total_tokens=self.input_tokens + self.output_tokens,
        )


async def _no_checkpoint() -> None:
    return None


@dataclass(slots=True)
class _Connections:
    """One MCP connection per server for as long as the loop runs, opened on first use."""

    tools: ToolSet
    open: dict[str, McpConnection] = field(default_factory=dict)

    async def get(self, label: str) -> McpConnection:
        if label not in self.open:
            from engine.tools.mcp import open_connection

            settings = get_settings()
            connection = open_connection(
                self.tools.servers[label].spec,
                allow_private=settings.mcp_allow_private_networks,
                connect_timeout=settings.mcp_connect_timeout_seconds,
                call_timeout=settings.mcp_call_timeout_seconds,
                max_output_bytes=settings.mcp_max_output_bytes,
            )
            await connection.__aenter__()
            self.open[label] = connection
        return self.open[label]

    async def close(self) -> None:
        for connection in self.open.values():
            try:
                await connection.__aexit__(None, None, None)
            except Exception:
                logger.exception("closing an MCP connection failed")
        self.open.clear()


def _after_first_turn(tool_choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """A forced tool choice applies to the first turn; later turns may answer."""
    if tool_choice == "required" or (isinstance(tool_choice, dict) and tool_choice.get("type") in ("function", "mcp")):
        return "auto"
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "allowed_tools":
        return {**tool_choice, "mode": "auto"}
    return tool_choice


def _bad_arguments(arguments: str) -> McpCallResult:
    from engine.tools.mcp import McpCallResult

    text = f"The arguments are not a JSON object: {arguments[:200]!r}"
    return McpCallResult(None, {"type": "mcp_tool_execution_error", "content": [{"type": "input_text", "text": text}]})


class TurnLoop:
    """Runs the turns of one response. ``checkpoint`` is awaited before every model and tool call (a background
    run raises from it once the response is cancelled)."""

    def __init__(
        self,
        inputs: LoopInputs,
        stream: ResponseStream,
        state: LoopState | None = None,
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> None:
        self.inputs = inputs
        self.stream = stream
        self.state = state or LoopState(tool_choice=inputs.params.tool_choice)
        self.checkpoint = checkpoint
        self.connections = _Connections(inputs.tools)
        self.settings = get_settings()
        self.upstream_seconds = 0.0
        self.summaries = dict(inputs.summaries)
        if inputs.tools.file_search is not None:
            from engine.tools.file_search import citations, sources

            # numbered as the model was shown them: across the context, then this response's output
            context, output = inputs.context_items, stream.response.output
            stream.annotate = lambda text: citations(text, sources([*context, *output]))

    @property
    def outcome(self) -> LoopOutcome:
        """What this loop has produced so far besides its events."""
        state = self.state
        return LoopOutcome(state.done, state.finish, state.usage(), self.upstream_seconds)

    async def close(self) -> None:
        await self.connections.close()

    async def _call(self, label: str, name: str, arguments: str) -> McpCallResult:
        try:
            parsed = from_json(arguments or "{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return _bad_arguments(arguments)
        await self.checkpoint()
        connection = await self.connections.get(label)
        return await connection.call_tool(name, parsed)

    async def _run_call(self, call: TurnCall) -> AsyncIterator[ResponseStreamEvent]:
        if call.kind == "file_search":
            async for event in self._run_file_search(call):
                yield event
            return
        item = call.item
        assert isinstance(item, McpCall)
        for event in self.stream.mcp_call_running(call):
            yield event
        result = await self._call(item.server_label, item.name, call.arguments)
        self.state.executed += 1
        for event in self.stream.mcp_call_finished(call, result.output, result.error):
            yield event

    async def _run_file_search(self, call: TurnCall) -> AsyncIterator[ResponseStreamEvent]:
        from engine.errors import APIError
        from engine.tools.file_search import queries_of, run_search

        spec = self.inputs.tools.file_search
        assert spec is not None
        queries = queries_of(call.arguments)
        for event in self.stream.file_search_searching(call, queries):
            yield event
        await self.checkpoint()
        try:
            results: list[dict[str, Any]] | None = (
                await run_search(self.inputs.tenant, spec, queries) if queries else []
            )
        except APIError as exc:  # a store deleted or expired since the request started: the model is told
            logger.warning("file search failed", extra={"error": exc.message})
            results = None
        self.state.executed += 1
        include = "file_search_call.results" in (self.inputs.params.include or [])
        for event in self.stream.file_search_finished(call, results, include_results=include):
            yield event

    async def prelude(self) -> AsyncIterator[ResponseStreamEvent]:
        """List the tools of MCP servers not listed in the context yet, and run calls approved in the input."""
        from engine.tools.mcp import McpError

        toolset = self.inputs.tools
        for label in [label for label in toolset.servers if label not in toolset.listed]:
            events, item, index = self.stream.mcp_list_started(label)
            for event in events:
                yield event
            await self.checkpoint()
            try:
                tools = await (await self.connections.get(label)).list_tools()
                error = None
            except McpError as exc:
                tools, error = [], exc.message
            # allowed_tools filters what is imported, as OpenAI's mcp_list_tools shows it
            tools = [tool for tool in tools if toolset.servers[label].permits(tool)]
            toolset.listed[label] = tools
            for event in self.stream.mcp_list_finished(item, index, [t.to_item() for t in tools], error):
                yield event
        toolset.refresh()
        for approval in self.inputs.approvals:
            if not approval.approve:
                continue  # the model is told from the approval response item (see conversation)
            request = approval.request
            events, call = self.stream.mcp_call_approved(
                request["server_label"], request["name"], request.get("arguments") or "", request["id"]
            )
            for event in events:
                yield event
            async for event in self._run_call(call):
                yield event
        self.state.prelude_done = True

    def _classifier(self, callable_now: set[str]) -> Callable[[str], tuple[CallKind, str | None, str]]:
        toolset = self.inputs.tools
        limit = self.inputs.params.max_tool_calls
        planned = self.state.executed

        def classify(chat_name: str) -> tuple[CallKind, str | None, str]:
            nonlocal planned
            target = toolset.resolve(chat_name)
            if chat_name not in callable_now:
                return "ignore", None, target.name
            if target.kind == "custom":
                return "custom", None, target.name
            if target.kind == "file_search":
                if limit is not None and planned >= limit:
                    return "ignore", None, target.name
                planned += 1
                return "file_search", None, target.name
            if target.kind == "function" or target.server_label is None:
                return "function", target.namespace, target.name
            if limit is not None and planned >= limit:
                return "ignore", target.server_label, target.name
            server = toolset.servers[target.server_label]
            if server.needs_approval(toolset.mcp_tool(target.server_label, target.name) or target.name):
                return "approval", target.server_label, target.name
            planned += 1
            return "mcp", target.server_label, target.name

        return classify

    def _items(self) -> list[dict[str, Any]]:
        """The context and this response's output so far: what a turn's messages are made of."""
        items = [*self.inputs.context_items, *(item.model_dump() for item in self.stream.response.output)]
        if self.state.dropped:
            dropped = set(self.state.dropped)
            items = [item for item in items if item.get("id") not in dropped]
        return items

    def _messages(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:  # compaction items made in an earlier step of a background run
            blob = item.get("encrypted_content") if item.get("type") == "compaction" else None
            if blob and blob not in self.summaries:
                self.summaries[blob] = open_sealed(blob, self.inputs.tenant, "compaction", param="output")
        return to_chat_messages(
            self.inputs.params.instructions,
            items,
            self.inputs.tools.model_name,
            with_reasoning=self.settings.upstream_accepts_reasoning,
            summaries=self.summaries,
        )

    async def _compact(self, items: list[dict[str, Any]]) -> AsyncIterator[ResponseStreamEvent]:
        """context_management: the context passed its threshold, so it is compacted before this turn; the
        compaction item joins the output and stands for what it replaced from now on."""
        inputs = self.inputs
        await self.checkpoint()
        compaction = await compact_items(
            provider=inputs.provider,
            chat=inputs.chat,
            instructions=inputs.params.instructions,
            items=items,
            tenant=inputs.tenant,
            summaries=self.summaries,
            model_name=inputs.tools.model_name,
        )
        self.upstream_seconds += compaction.upstream_seconds
        self.summaries[compaction.item.encrypted_content] = compaction.summary
        self.state.add(compaction.usage)  # the compaction pass is part of this response's usage
        self.state.compacted_turn = self.state.turns
        for event in self.stream.compaction(compaction.item):
            yield event

    def _truncate(self, items: list[dict[str, Any]], offered: list[dict[str, Any]], exc: ProviderError) -> list[str]:
        """truncation "auto" and a context the upstream refused as too long: the ids of the items to drop."""
        if self.inputs.params.truncation != "auto" or not is_context_overflow(exc):
            return []
        drop = items_to_drop(items, exc, lambda kept: estimate_tokens(self._messages(kept), offered))
        return [str(items[i]["id"]) for i in sorted(drop) if items[i].get("id")]

    async def turn(self) -> AsyncIterator[ResponseStreamEvent]:
        """One model turn and the MCP calls it made; sets ``state.done`` when the response is answered."""
        state, inputs, stream = self.state, self.inputs, self.stream
        last = state.answer_now or state.turns >= self.settings.max_turns - 1
        offered, chat_choice = inputs.tools.offer(state.tool_choice)
        if offered and last:
            chat_choice = "none"
        # what the model may call this turn; a call outside it (allowed_tools, tool_choice "none") is suppressed
        callable_now = set() if chat_choice == "none" else {t["function"]["name"] for t in offered}
        items = self._items()
        threshold = compact_threshold(inputs.params.context_management)
        if threshold is not None and state.compacted_turn < state.turns:
            if estimate_tokens(self._messages(items), offered) > threshold:
                async for event in self._compact(items):
                    yield event
                items = self._items()
        chat = inputs.chat.with_turn(messages=self._messages(items), tools=offered, tool_choice=chat_choice)
        await self.checkpoint()
        stream.begin_turn(self._classifier(callable_now))
        state.finish = None
        upstream = inputs.provider.stream(chat).__aiter__()
        retried = False
        while True:
            waited = time.perf_counter()
            try:
                delta = await anext(upstream)
            except StopAsyncIteration:
                break
            except ProviderError as exc:
                # truncation "auto": nothing was streamed yet, so the turn can be retried on a shorter context
                dropped = [] if retried else self._truncate(items, offered, exc)
                if not dropped:
                    raise
                retried = True
                logger.info("context too long: dropped the oldest items", extra={"dropped": len(dropped)})
                state.dropped += dropped
                items = self._items()
                chat = chat.with_turn(messages=self._messages(items), tools=offered, tool_choice=chat_choice)
                upstream = inputs.provider.stream(chat).__aiter__()
                continue
            finally:
                self.upstream_seconds += time.perf_counter() - waited
            if isinstance(delta, TextDelta):
                events = stream.text(delta.text, delta.logprobs)
            elif isinstance(delta, ReasoningDelta):
                events = stream.reasoning(delta.text)
            elif isinstance(delta, ToolCallDelta):
                events = stream.tool_call(delta)
            elif isinstance(delta, Usage):
                state.add(delta)
                if delta.service_tier:  # the tier the upstream says it used is the one echoed
                    stream.response.service_tier = delta.service_tier
                events = []
            elif isinstance(delta, Finish):
                state.finish, events = delta.reason, []
            for event in events:
                yield event
        # a turn cut off by the token budget or a filter leaves its last item incomplete, not completed
        cut = state.finish in ("length", "content_filter")
        events, made = stream.end_turn("incomplete" if cut else "completed")
        for event in events:
            yield event
        state.turns += 1
        mcp_calls = [c for c in made.calls if c.kind in ("mcp", "file_search")]  # the calls this server runs
        hands_back = any(c.kind in ("function", "custom", "approval") for c in made.calls)
        if not mcp_calls:
            ignored = any(c.kind == "ignore" for c in made.calls)
            if ignored and not hands_back and not state.answer_now:
                # max_tool_calls reached, or calls outside what was allowed: the model answers with what it has
                state.answer_now = True
            else:
                state.done = True
            return
        for call in mcp_calls:
            async for event in self._run_call(call):
                yield event
        limit = inputs.params.max_tool_calls
        state.tool_choice = _after_first_turn(state.tool_choice)
        state.answer_now = limit is not None and state.executed >= limit
        state.done = hands_back or state.finish == "length" or state.turns >= self.settings.max_turns

    def finish(self) -> list[ResponseStreamEvent]:
        """The closing events of a finished loop (the terminal event comes after storing). Output that breaks
        the requested JSON format fails the response rather than being returned as if it were valid."""
        if "file_search_call.results" not in (self.inputs.params.include or []):
            from engine.tools.file_search import strip_results

            strip_results(self.stream.response.output)
        mismatch = None if self.state.finish == "length" else self._format_mismatch()
        if mismatch is not None:
            logger.warning("structured output mismatch", extra={"reason": mismatch[:200]})
            return self.stream.fail("server_error", mismatch, self.state.usage())
        return self.stream.finish(self.state.usage(), _INCOMPLETE.get(self.state.finish or "stop"))

    def _format_mismatch(self) -> str | None:
        text_config = self.inputs.params.text
        fmt = text_config.format if text_config else None
        messages = [item for item in self.stream.response.output if item.type == "message"]
        if fmt is None or fmt.type == "text" or not messages:
            return None
        text = "".join(getattr(part, "text", "") for part in messages[-1].content)
        try:
            value = from_json(text)
        except ValueError:
            return f"The model's answer is not valid JSON, as text.format '{fmt.type}' requires."
        if fmt.type == "json_schema" and fmt.strict and fmt.schema_ is not None:
            mismatch = schema_mismatch(fmt.schema_, value)  # no reference is ever fetched (engine.models.json_schema)
            if mismatch is not None:
                return f"The model's answer does not match the JSON schema '{fmt.name}' {mismatch}"
        return None

    def fail(self, exc: BaseException) -> list[ResponseStreamEvent]:
        """The closing events of a turn that raised: ``failed`` with the error's code, message and type."""
        failure = failure_of(exc)
        return self.stream.fail(
            failure.code, failure.message, self.state.usage(), type_=failure.type, retry_after=failure.retry_after
        )

    async def run(self) -> AsyncIterator[ResponseStreamEvent]:
        """A whole response in one go (the foreground path): prelude, turns until done, closing events; then
        ``outcome`` says what it produced."""
        try:
            async for event in self.prelude():
                yield event
            while not self.state.done:
                async for event in self.turn():
                    yield event
            closing = self.finish()
        except Exception as exc:  # any fault in a turn ends the response as failed, with its reason
            closing = self.fail(exc)
        finally:
            await self.close()
        for event in closing:
            yield event
