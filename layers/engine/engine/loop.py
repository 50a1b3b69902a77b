"""The turn loop: a model turn, the MCP calls it asked for (run here), the next turn — until the model answers,
hands function calls to the client, or waits for an approval.

Bounded by ``max_tool_calls`` (further calls are ignored and the model is asked to answer) and the configured
turn limit. Everything the loop does reaches the client as stream events through ``ResponseStream``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from .conversation import mcp_result_text
from .models.events import ResponseStreamEvent
from .models.items import McpCall
from .models.response import InputTokensDetails, OutputTokensDetails, ResponseUsage
from .observability import logger
from .providers import ProviderError
from .providers.base import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from .settings import get_settings
from .streaming import CallKind, ResponseStream, TurnCall

if TYPE_CHECKING:
    from .create import CreateRun
    from .tools.mcp import McpCallResult, McpConnection

__all__ = ["Approval", "run_loop"]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True, slots=True)
class Approval:
    """An ``mcp_approval_response`` of this request, with the request it answers."""

    request: dict[str, Any]
    approve: bool


@dataclass(slots=True)
class _Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_tokens += usage.cached_tokens
        self.reasoning_tokens += usage.reasoning_tokens

    def model(self) -> ResponseUsage:
        return ResponseUsage(
            input_tokens=self.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=self.cached_tokens),
            output_tokens=self.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=self.reasoning_tokens),
            total_tokens=self.input_tokens + self.output_tokens,
        )


@dataclass(slots=True)
class _Connections:
    """One MCP connection per server for the whole response, opened on first use."""

    run: CreateRun
    open: dict[str, McpConnection] = field(default_factory=dict)

    async def get(self, label: str) -> McpConnection:
        if label not in self.open:
            from .tools.mcp import open_connection

            settings = get_settings()
            connection = open_connection(
                self.run.tools.servers[label].spec,
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


async def _call(connections: _Connections, label: str, name: str, arguments: str) -> McpCallResult:
    from .tools.mcp import McpCallResult

    try:
        parsed = from_json(arguments or "{}")
    except ValueError as exc:
        parsed = exc
    if not isinstance(parsed, dict):
        text = f"The arguments are not a JSON object: {arguments[:200]!r}"
        return McpCallResult(
            None, {"type": "mcp_tool_execution_error", "content": [{"type": "input_text", "text": text}]}
        )
    connection = await connections.get(label)
    return await connection.call_tool(name, parsed)


def _tool_message(call: TurnCall, result: McpCallResult) -> dict[str, Any]:
    return {
        "role": "tool",
        "tool_call_id": call.call_id,
        "content": mcp_result_text({"output": result.output, "error": result.error}),
    }


async def run_loop(run: CreateRun, stream: ResponseStream) -> AsyncIterator[ResponseStreamEvent]:
    """The response's events between ``in_progress`` and the closing events (which ``service`` adds)."""
    settings = get_settings()
    toolset = run.tools
    messages = list(run.chat.messages)
    usage = _Usage()
    executed = 0
    limit = run.params.max_tool_calls
    connections = _Connections(run)
    finish: str | None = None
    try:
        for label in [label for label in toolset.servers if label not in toolset.listed]:
            events, item, index = stream.mcp_list_started(label)
            for event in events:
                yield event
            from .tools.mcp import McpError

            try:
                tools = await (await connections.get(label)).list_tools()
                error = None
            except McpError as exc:
                tools, error = [], exc.message
            # allowed_tools filters what is imported, as OpenAI's mcp_list_tools shows it
            tools = [tool for tool in tools if toolset.servers[label].permits(tool)]
            toolset.listed[label] = tools
            for event in stream.mcp_list_finished(item, index, [t.to_item() for t in tools], error):
                yield event

        for approval in run.approvals:
            request = approval.request
            if not approval.approve:
                # The model learns the call was refused rather than seeing it vanish.
                call_id = f"call_{request['id']}"
                function = {"name": toolset.chat_name(request["server_label"], request["name"]),
                            "arguments": request.get("arguments") or "{}"}  # fmt: skip
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": function}]})  # fmt: skip
                messages.append(
                    {"role": "tool", "tool_call_id": call_id, "content": "The user did not approve this call."}
                )
                continue
            events, call = stream.mcp_call_approved(
                request["server_label"], request["name"], request.get("arguments") or "", request["id"]
            )
            for event in events:
                yield event
            for event in stream.mcp_call_running(call):
                yield event
            result = await _call(connections, request["server_label"], request["name"], call.arguments)
            executed += 1
            for event in stream.mcp_call_finished(call, result.output, result.error):
                yield event
            function = {
                "name": toolset.chat_name(request["server_label"], request["name"]),
                "arguments": call.arguments,
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call.call_id, "type": "function", "function": function}]})  # fmt: skip
            messages.append(_tool_message(call, result))

        tool_choice = run.params.tool_choice
        answer_now = False
        for turn in range(settings.max_turns):
            planned = executed

            def classify(chat_name: str) -> tuple[CallKind, str | None, str]:
                nonlocal planned
                target = toolset.resolve(chat_name)
                if target.kind == "function" or target.server_label is None:
                    return "function", None, target.name
                if limit is not None and planned >= limit:
                    return "ignore", target.server_label, target.name
                server = toolset.servers[target.server_label]
                if server.needs_approval(toolset.mcp_tool(target.server_label, target.name) or target.name):
                    return "approval", target.server_label, target.name
                planned += 1
                return "mcp", target.server_label, target.name

            offered, chat_choice = toolset.offer(tool_choice)
            if offered and (answer_now or turn == settings.max_turns - 1):
                chat_choice = "none"
            chat = replace(
                run.chat,
                messages=messages,
                tools=offered,
                tool_choice=chat_choice,
                parallel_tool_calls=run.chat.parallel_tool_calls if offered else None,
            )
            stream.begin_turn(classify)
            finish = None
            upstream = run.provider.stream(chat).__aiter__()
            while True:
                waited = time.perf_counter()
                try:
                    delta = await anext(upstream)
                except StopAsyncIteration:
                    break
                finally:
                    run.upstream_seconds += time.perf_counter() - waited
                if isinstance(delta, TextDelta):
                    events = stream.text(delta.text)
                elif isinstance(delta, ReasoningDelta):
                    events = stream.reasoning(delta.text)
                elif isinstance(delta, ToolCallDelta):
                    events = stream.tool_call(delta)
                elif isinstance(delta, Usage):
                    usage.add(delta)
                    events = []
                elif isinstance(delta, Finish):
                    finish, events = delta.reason, []
                for event in events:
                    yield event
            events, made = stream.end_turn()
            for event in events:
                yield event
            mcp_calls = [c for c in made.calls if c.kind == "mcp"]
            hands_back = any(c.kind in ("function", "approval") for c in made.calls)
            if not mcp_calls:
                ignored = any(c.kind == "ignore" for c in made.calls)
                if ignored and not hands_back and not answer_now:
                    answer_now = True  # max_tool_calls reached: the model answers with what it has
                    continue
                break
            tool_messages: list[dict[str, Any]] = []
            for call in mcp_calls:
                assert call.item is not None
                for event in stream.mcp_call_running(call):
                    yield event
                mcp_call = call.item
                assert isinstance(mcp_call, McpCall)
                outcome = await _call(connections, mcp_call.server_label, mcp_call.name, call.arguments)
                executed += 1
                for event in stream.mcp_call_finished(call, outcome.output, outcome.error):
                    yield event
                tool_messages.append(_tool_message(call, outcome))
            messages.append({
                "role": "assistant",
                "content": made.text or None,
                "tool_calls": [
                    {"id": c.call_id, "type": "function", "function": {"name": c.chat_name, "arguments": c.arguments}}
                    for c in mcp_calls
                ],
            })  # fmt: skip
            messages.extend(tool_messages)
            if hands_back or finish == "length":
                break
            tool_choice = _after_first_turn(tool_choice)
            answer_now = limit is not None and executed >= limit
        closing = stream.finish(usage.model(), _INCOMPLETE.get(finish or "stop"))
    except ProviderError as exc:
        logger.warning("upstream failed", extra={"code": exc.code, "status": exc.status, "error": exc.message})
        closing = stream.fail(exc.code, exc.message, usage.model())
    finally:
        await connections.close()
    for event in closing:
        yield event
