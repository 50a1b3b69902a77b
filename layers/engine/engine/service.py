"""The logic layer: what each endpoint does, in terms of the conversation, the provider, the stream and the store.

Data flows one way: request → ``prepare_create`` (validation, chain, messages; every 4xx happens here, before
any byte is streamed) → ``run_create`` (provider turn → stream events) → store → terminal event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .conversation import normalize_input, to_chat_messages
from .errors import InvalidRequestError, NotFoundError, PreviousResponseNotFoundError
from .ids import new_id
from .models.events import ResponseStreamEvent
from .models.request import Reasoning, ResponseCreateParams, ResponseTextConfig
from .models.response import (
    InputTokensDetails,
    OutputTokensDetails,
    Response,
    ResponseDeleted,
    ResponseItemList,
    ResponseList,
    ResponseUsage,
)
from .observability import logger
from .providers import ChatRequest, Provider, ProviderError, get_provider
from .providers.base import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from .storage import get_store
from .streaming import ResponseStream
from .tools import apply_tool_choice, check_pairing, prepare_tools

__all__ = [
    "CreateRun",
    "create_response",
    "delete_response",
    "get_response",
    "list_input_items",
    "list_responses",
    "prepare_create",
    "run_create",
]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


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
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0

    @property
    def overhead_ms(self) -> float:
        """Time this server spent on the request itself: wall time minus time waiting on the upstream."""
        return (time.perf_counter() - self.started - self.upstream_seconds) * 1000


def _reject_unsupported(params: ResponseCreateParams) -> None:
    if params.background:
        raise InvalidRequestError("Background mode is not available on this server yet.", param="background")
    if params.conversation is not None:
        raise InvalidRequestError("Conversations are not available on this server yet.", param="conversation")
    if params.prompt is not None:
        raise InvalidRequestError("Prompt templates are not available on this server yet.", param="prompt")
    if params.input is None and params.previous_response_id is None:
        raise InvalidRequestError(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if params.stream_options is not None and not params.stream:
        raise InvalidRequestError("stream_options may only be set when stream is true.", param="stream_options")
    if params.model_extra:
        logger.info("ignoring unknown request fields", extra={"fields": sorted(params.model_extra)})


async def prepare_create(params: ResponseCreateParams, tenant: str, *, started: float | None = None) -> CreateRun:
    """Validate and resolve everything a create needs; raises ``APIError`` (4xx) before anything streams."""
    _reject_unsupported(params)
    input_items = normalize_input(params.input)
    tools, chat_tools = prepare_tools(params.tools)
    store = get_store()
    context: list[dict[str, Any]] = []
    ancestors: list[str] = []
    if params.previous_response_id:
        loaded = await asyncio.to_thread(store.load_context, tenant, params.previous_response_id)
        if loaded is None:
            raise PreviousResponseNotFoundError(params.previous_response_id)
        context, ancestors = loaded.items, loaded.ancestors
    check_pairing(context + input_items)
    offered_tools, chat_choice = apply_tool_choice(params.tool_choice, chat_tools)
    if params.store:
        store.check_items(input_items)
    response = Response(
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
        tools=tools,
        truncation=params.truncation or "disabled",
        user=params.user,
        safety_identifier=params.safety_identifier,
        prompt_cache_key=params.prompt_cache_key,
        metadata=params.metadata or {},
    )
    chat = ChatRequest(
        model=params.model,
        messages=to_chat_messages(params.instructions, context + input_items),
        temperature=params.temperature,
        top_p=params.top_p,
        max_output_tokens=params.max_output_tokens,
        tools=offered_tools,
        tool_choice=chat_choice,
        parallel_tool_calls=params.parallel_tool_calls if offered_tools else None,
        reasoning_effort=params.reasoning.effort if params.reasoning else None,
        user=params.safety_identifier or params.user,
    )
    run = CreateRun(tenant, params, response, input_items, ancestors, chat, get_provider())
    if started is not None:
        run.started = started
    return run


def _usage(usage: Usage | None) -> ResponseUsage:
    if usage is None:
        return ResponseUsage()
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens),
        output_tokens=usage.output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.input_tokens + usage.output_tokens,
    )


async def run_create(run: CreateRun) -> AsyncIterator[ResponseStreamEvent]:
    """The response's events, in order; the response is stored before its terminal event is sent."""
    stream = ResponseStream(run.response)
    for event in stream.start():
        yield event
    usage: Usage | None = None
    finish: str | None = None
    upstream = run.provider.stream(run.chat).__aiter__()
    try:
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
                usage, events = delta, []
            elif isinstance(delta, Finish):
                finish, events = delta.reason, []
            for event in events:
                yield event
        closing = stream.finish(_usage(usage), _INCOMPLETE.get(finish or "stop"))
    except ProviderError as exc:
        logger.warning("upstream failed", extra={"code": exc.code, "status": exc.status, "error": exc.message})
        closing = stream.fail(exc.code, exc.message, _usage(usage))
    for event in closing:
        yield event
    if run.response.store:
        try:
            await asyncio.to_thread(get_store().put, run.tenant, run.response, run.input_items, run.ancestors)
        except Exception:
            logger.exception("storing the response failed")
            for event in stream.fail("server_error", "The response could not be stored."):
                yield event
    yield stream.terminal()


async def create_response(run: CreateRun) -> Response:
    """The non-streamed answer: the fold of the same events the stream would carry."""
    async for _ in run_create(run):
        pass
    return run.response


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


def get_response(tenant: str, response_id: str) -> Response:
    response = get_store().get(tenant, response_id)
    if response is None:
        raise _not_found(response_id)
    return response


def delete_response(tenant: str, response_id: str) -> ResponseDeleted:
    if not get_store().delete(tenant, response_id):
        raise _not_found(response_id)
    return ResponseDeleted(id=response_id)


def list_input_items(
    tenant: str, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
) -> ResponseItemList:
    page = get_store().list_input_items(tenant, response_id, limit=limit, order=order, after=after)
    if page is None:
        raise _not_found(response_id)
    return ResponseItemList(
        data=page.data,
        first_id=page.data[0]["id"] if page.data else None,
        last_id=page.data[-1]["id"] if page.data else None,
        has_more=page.has_more,
    )


def list_responses(tenant: str, *, limit: int, after: str | None, before: str | None) -> ResponseList:
    if after is not None and before is not None:
        raise InvalidRequestError("Use either 'after' or 'before', not both.", param="before")
    page = get_store().list_responses(tenant, limit=limit, after=after, before=before)
    return ResponseList(
        data=page.data,
        first_id=page.data[0].id if page.data else None,
        last_id=page.data[-1].id if page.data else None,
        has_more=page.has_more,
    )
