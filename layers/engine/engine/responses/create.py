"""Creating a response: what ``POST /v1/responses`` does, in terms of the conversation, the tools, the turn
loop, the stream and the store.

Data flows one way: request → ``prepare_create`` (validation, chain, tools, messages; every 4xx happens here,
before any byte is streamed) → ``run_create`` (the turn loop → stream events) → store → terminal event.
The turn loop (``loop.py``) does not know this module: it reads ``CreateRun.loop_inputs()`` and hands back a
``LoopOutcome`` that ``CreateRun.apply`` records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from engine.conversations import conversation_items, conversation_ref
from engine.errors import InvalidRequestError, PreviousResponseNotFoundError
from engine.ids import new_id
from engine.models.events import ResponseStreamEvent
from engine.models.request import Reasoning, ResponseCreateParams, ResponseTextConfig
from engine.models.response import (
    Response,
)
from engine.observability import logger
from engine.providers import ChatRequest, Provider, get_provider
from engine.responses.approvals import check_approvals
from engine.responses.compaction import open_summaries
from engine.responses.input import normalize_input
from engine.responses.loop import Approval, LoopInputs, LoopOutcome, TurnLoop
from engine.responses.persist import store_abandoned, store_finished
from engine.responses.prompts import apply_prompt
from engine.sealing import open_reasoning, seal_reasoning
from engine.settings import get_settings
from engine.storage import ResponseStore, StoredContext, get_store
from engine.streaming import ResponseStream
from engine.tools import ToolSet, build_toolset, check_pairing

__all__ = ["CreateRun", "create_response", "prepare_create", "run_create"]


@dataclass(slots=True)
class CreateRun:
    """A validated create, ready to run: the initial Response, what to store and what to send upstream."""

    tenant: str
    params: ResponseCreateParams
    response: Response
    input_items: list[dict[str, Any]]
    ancestors: list[str]
    chat: ChatRequest
    provider: Provider
    tools: ToolSet
    approvals: list[Approval]
    # the chain's items and this request's input: what every turn's messages start from
    context_items: list[dict[str, Any]] = field(default_factory=list)
    # the summaries of the context's compaction items, by sealed blob (what the model is shown in their place)
    summaries: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0

    def new_stream(self, sequence_start: int = 0) -> ResponseStream:
        """The event stream of this response; it seals reasoning when the request included encrypted_content."""
        seal = None
        if self.params.include and "reasoning.encrypted_content" in self.params.include:
            tenant = self.tenant

            def seal(text: str) -> str:
                return seal_reasoning(text, tenant)

        summarize = bool(self.params.reasoning and self.params.reasoning.summary)
        return ResponseStream(self.response, sequence_start, seal, summarize=summarize)

    def loop_inputs(self) -> LoopInputs:
        """What the turn loop reads from this create."""
        return LoopInputs(
            self.params,
            self.chat,
            self.provider,
            self.tools,
            self.approvals,
            self.context_items,
            self.summaries,
            tenant=self.tenant,
        )

    def apply(self, outcome: LoopOutcome) -> None:
        """Record what a turn loop produced (the response itself was built through the loop's stream)."""
        self.upstream_seconds += outcome.upstream_seconds

    @property
    def overhead_ms(self) -> float:
        """Time this server spent on the request itself: wall time minus time waiting on the upstream."""
        return (time.perf_counter() - self.started - self.upstream_seconds) * 1000


def _reject_unsupported(params: ResponseCreateParams) -> None:
    if params.conversation is not None and params.previous_response_id is not None:
        raise InvalidRequestError(
            "Provide either 'conversation' or 'previous_response_id', not both.", param="previous_response_id"
        )
    if params.input is None and params.previous_response_id is None and params.prompt is None:
        raise InvalidRequestError(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    window = params.background_options.completion_window if params.background_options else None
    if window in ("2h", "8h") and (not params.background or params.stream):
        raise InvalidRequestError(
            f"A completion_window of '{window}' needs background=true and stream=false.",
            param="background_options.completion_window",
        )
    if params.stream_options is not None and not params.stream:
        raise InvalidRequestError("stream_options may only be set when stream is true.", param="stream_options")
    if params.model_extra:
        if get_settings().strict_requests:
            name = sorted(params.model_extra)[0]
            raise InvalidRequestError(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        logger.info("ignoring unknown request fields", extra={"fields": sorted(params.model_extra)})


async def _resolve_references(
    items: list[dict[str, Any]], context: list[dict[str, Any]], tenant: str, store: ResponseStore
) -> list[dict[str, Any]]:
    """``item_reference`` inputs become the items they name: from this request's context, else the tenant's
    stored responses (as Codex and the Vercel AI SDK send them)."""
    if not any(item.get("type") == "item_reference" for item in items):
        return items
    known = {item["id"]: item for item in context if item.get("id")}
    resolved: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if item.get("type") != "item_reference":
            known.setdefault(str(item.get("id")), item)
            resolved.append(item)
            continue
        found = known.get(item["id"]) or await asyncio.to_thread(store.find_item, tenant, item["id"])
        if found is None:
            raise InvalidRequestError(
                f"Item with id '{item['id']}' not found. Items are not persisted when `store` is set to false. "
                "Try again with `store` set to true, or remove this item from your input.",
                param=f"input[{index}]",
            )
        resolved.append(dict(found))
    return resolved


def _open_sealed_reasoning(items: list[dict[str, Any]], tenant: str) -> None:
    """Reasoning items sent back by value with ``encrypted_content`` are verified (a tampered or foreign blob is a
    400) and, when they carry no readable content, get it back for the upstream."""
    for index, item in enumerate(items):
        blob = item.get("encrypted_content") if item.get("type") == "reasoning" else None
        if blob:
            text = open_reasoning(blob, tenant, param=f"input[{index}].encrypted_content")
            if not item.get("content"):
                item["content"] = [{"type": "reasoning_text", "text": text}]


async def prepare_create(
    params: ResponseCreateParams,
    tenant: str,
    *,
    started: float | None = None,
    background_of: Response | None = None,
    previous: StoredContext | None = None,
) -> CreateRun:
    """Validate and resolve everything a create needs; raises ``APIError`` (4xx) before anything streams.
    ``previous``: the context of ``previous_response_id`` when the caller has it already (a WebSocket
    connection's cached response), instead of loading it from the store."""
    params = await apply_prompt(params, tenant)
    _reject_unsupported(params)
    input_items = normalize_input(params.input)
    settings = get_settings()
    tools = await build_toolset(
        params.tools,
        params.tool_choice,
        allow_private=settings.mcp_allow_private_networks,
        strict=settings.strict_requests,
    )
    if tools.file_search is not None:  # another tenant's or an unknown store: the 404 a search would give
        from engine.tools.file_search import check_stores

        index = next(n for n, t in enumerate(params.tools or []) if t.get("type") == "file_search")
        await check_stores(tenant, tools.file_search, index)
    store = get_store()
    context: list[dict[str, Any]] = []
    ancestors: list[str] = []
    if params.previous_response_id:
        loaded = previous or await asyncio.to_thread(store.load_context, tenant, params.previous_response_id)
        if loaded is None:
            raise PreviousResponseNotFoundError(params.previous_response_id)
        context, ancestors = loaded.items, loaded.ancestors
    context += await conversation_items(params, tenant)
    input_items = await _resolve_references(input_items, context, tenant, store)
    _open_sealed_reasoning(input_items, tenant)
    summaries = open_summaries(context + input_items, tenant, first_input=len(context))
    check_pairing(context + input_items)
    approvals = await check_approvals(context, input_items, tools, tenant, store)
    tools.remember_listings(context + input_items)
    if params.store:
        store.check_items(input_items)
    response = background_of or Response(
        id=new_id("resp"),
        created_at=int(time.time()),
        model=params.model,
        instructions=params.instructions,
        max_output_tokens=params.max_output_tokens,
        max_tool_calls=params.max_tool_calls,
        parallel_tool_calls=params.parallel_tool_calls is not False,
        previous_response_id=params.previous_response_id,
        reasoning=params.reasoning or Reasoning(),
        store=params.store is not False,
        temperature=1.0 if params.temperature is None else params.temperature,
        top_p=1.0 if params.top_p is None else params.top_p,
        top_logprobs=params.top_logprobs or 0,
        text=params.text or ResponseTextConfig(),
        tool_choice=params.tool_choice or "auto",
        tools=tools.echoed,
        truncation=params.truncation or "disabled",
        user=params.user,
        safety_identifier=params.safety_identifier,
        prompt_cache_key=params.prompt_cache_key,
        # the requested tier until the upstream reports the one it used ("auto" is the project default)
        service_tier="default" if params.service_tier in (None, "auto") else params.service_tier,
        prompt=params.prompt,
        metadata=params.metadata or {},
        background=bool(params.background),
        background_options=(
            params.background_options.model_dump(exclude_none=True) if params.background_options else None
        ),
        conversation=conversation_ref(params),
    )
    chat = ChatRequest(
        model=params.model,
        messages=[],
        temperature=params.temperature,
        top_p=params.top_p,
        max_output_tokens=params.max_output_tokens,
        parallel_tool_calls=params.parallel_tool_calls,
        reasoning_effort=params.reasoning.effort if params.reasoning else None,
        response_format=params.text.format.to_chat() if params.text else None,
        user=params.safety_identifier or params.user,
        service_tier=None if params.service_tier == "auto" else params.service_tier,
        prompt_cache_key=params.prompt_cache_key,
        safety_identifier=params.safety_identifier,
        logprobs=bool(params.include and "message.output_text.logprobs" in params.include),
        top_logprobs=params.top_logprobs,
    )
    run = CreateRun(
        tenant, params, response, input_items, ancestors, chat, get_provider(), tools, approvals, context + input_items
    )
    run.summaries = summaries
    if started is not None:
        run.started = started
    return run


async def run_create(run: CreateRun) -> AsyncGenerator[ResponseStreamEvent]:
    """The response's events, in order; the response is stored before its terminal event is sent. A client
    that goes away mid-stream leaves it stored as ``cancelled`` with what was produced (see ``persist``)."""
    stream = run.new_stream()
    try:
        for event in stream.start():
            yield event
        loop = TurnLoop(run.loop_inputs(), stream)
        try:
            async for event in loop.run():
                yield event
        finally:
            run.apply(loop.outcome)
    except (asyncio.CancelledError, GeneratorExit):
        await store_abandoned(run, stream)
        raise
    for event in await store_finished(run, stream):
        yield event
    yield stream.terminal()


async def create_response(run: CreateRun) -> Response:
    """The non-streamed answer: the fold of the same events the stream would carry."""
    async for _ in run_create(run):
        pass
    return run.response
