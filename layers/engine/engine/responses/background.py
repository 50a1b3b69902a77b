"""Background responses: queued by the streaming function, run step by step by the Step Functions worker,
streamed (and resumed) from their stored events, cancelled through the response record.

The record in DynamoDB is the source of truth. Each worker step runs turns for a bounded time, publishing
events as it goes and committing output and events with a write conditional on ``in_progress``, so a cancel
(a conditional write to ``cancelled``) wins over anything the worker does afterwards. Before every model and
tool call, and at every event flush, the worker checks the status and stops once the response is cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from engine.errors import InvalidRequestError
from engine.models.events import ResponseFailedEvent, ResponseStreamEvent
from engine.models.request import ResponseCreateParams
from engine.models.response import ResponseError
from engine.observability import logger
from engine.providers import ProviderError
from engine.responses.create import CreateRun, prepare_create
from engine.responses.loop import LoopState, TurnLoop
from engine.responses.stored import not_found
from engine.settings import get_settings
from engine.storage import get_executions, get_store
from engine.streaming import ResponseStream

__all__ = ["check_streamable", "replay", "run_step", "submit"]

_TERMINAL = {"completed", "failed", "incomplete", "cancelled"}
_TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


class Cancelled(Exception):
    """The response was cancelled while this worker was running it."""


def _encode(events: list[ResponseStreamEvent]) -> list[tuple[int, str]]:
    return [(e.sequence_number, e.model_dump_json()) for e in events]


# --- submit (the streaming function) ---------------------------------------------------------------------------


async def submit(run: CreateRun) -> list[ResponseStreamEvent]:
    """Store the queued response with its first events and job, then start its execution."""
    run.response.background = True
    run.response.status = "queued"
    stream = run.new_stream()
    first = stream.start()
    job = {
        "tenant": run.tenant,
        "params": run.params.model_dump(mode="json", by_alias=True, exclude_unset=True),
        "ancestors": run.ancestors,
        "state": LoopState(tool_choice=run.params.tool_choice).model_dump(mode="json"),
    }
    store = get_store()
    await asyncio.to_thread(
        store.create_background, run.tenant, run.response, run.input_items, run.ancestors, job, _encode(first)
    )
    await asyncio.to_thread(get_executions().start, run.response.id)
    return first


# --- the worker (one state machine step) --------------------------------------------------------------------


class _Publisher:
    """Commits the worker's events at most every ``interval`` seconds; raises ``Cancelled`` once the response is
    no longer in progress."""

    def __init__(self, run: CreateRun, stream: ResponseStream, n_out: int, job: dict[str, Any], interval: float):
        self.run, self.stream, self.job = run, stream, job
        self.n_out = n_out
        self.pending: list[ResponseStreamEvent] = []
        self.interval = interval
        self.last = time.monotonic()

    async def add(self, events: list[ResponseStreamEvent]) -> None:
        self.pending.extend(events)
        if time.monotonic() - self.last >= self.interval:
            await self.commit()

    async def commit(self, *, final: bool = False) -> None:
        output = self.stream.response.output
        done_items = len(output) if final else self._settled(output)
        new_output = [item.model_dump() for item in output[self.n_out : done_items]]
        ok = await asyncio.to_thread(
            get_store().commit_progress,
            self.stream.response,
            n_out=done_items,
            new_output=new_output,
            events=_encode(self.pending),
            next_seq=self.stream.next_sequence_number,
            job=None if final else self.job,
        )
        self.last = time.monotonic()
        if not ok:
            raise Cancelled
        self.n_out = done_items
        self.pending = []

    @staticmethod
    def _settled(output: list[Any]) -> int:
        """Output items before the first one still being written."""
        for index, item in enumerate(output):
            if getattr(item, "status", "completed") == "in_progress":
                return index
        return len(output)


async def _checkpoint(response_id: str) -> None:
    progress = await asyncio.to_thread(get_store().progress, response_id)
    if progress is None or progress[0] != "in_progress":
        raise Cancelled


async def run_step(response_id: str, step: int) -> dict[str, Any]:
    """One state machine step: run turns for at most ``background_step_seconds``, commit, say whether done."""
    store = get_store()
    settings = get_settings()
    done = {"response_id": response_id, "step": step + 1, "done": True}
    job = await asyncio.to_thread(store.job, response_id)
    progress = await asyncio.to_thread(store.progress, response_id)
    if job is None or progress is None or progress[0] in _TERMINAL:
        return done
    status, n_out, next_seq = progress
    if status == "queued" and not await asyncio.to_thread(store.start_background, response_id):
        return done
    response = await asyncio.to_thread(store.get, job["tenant"], response_id)
    if response is None:
        return done
    params = ResponseCreateParams.model_validate(job["params"])
    run = await prepare_create(params, job["tenant"], background_of=response)
    # tools listed by an earlier step are in this response's own output
    run.tools.remember_listings([item.model_dump() for item in response.output])
    state = LoopState.model_validate(job["state"])
    stream = run.new_stream(sequence_start=next_seq)
    response.status = "in_progress"
    publisher = _Publisher(run, stream, n_out, job, settings.background_flush_seconds)
    loop = TurnLoop(run.loop_inputs(), stream, state, checkpoint=lambda: _checkpoint(response_id))
    deadline = time.monotonic() + settings.background_step_seconds
    try:
        if step == 0:
            await publisher.add(stream.in_progress())
        if not state.prelude_done:
            async for event in loop.prelude():
                await publisher.add([event])
        while not state.done and time.monotonic() < deadline:
            async for event in loop.turn():
                await publisher.add([event])
        if not state.done:
            job["state"] = state.model_dump(mode="json")
            await publisher.commit()
            return {"response_id": response_id, "step": step + 1, "done": False}
        await publisher.add(loop.finish())
    except Cancelled:
        logger.info("background response cancelled while running", extra={"response_id": response_id})
        return done
    except ProviderError as exc:
        await publisher.add(loop.fail(exc))
    finally:
        await loop.close()
    try:
        await publisher.add([stream.terminal()])
        await publisher.commit(final=True)
    except Cancelled:
        pass
    return done


# --- streaming a background response (create with stream=true, and resume) ------------------------------------


async def replay(tenant: str, response_id: str, starting_after: int = -1) -> AsyncIterator[str]:
    """Committed events after ``starting_after`` (SSE ``data`` JSON), then live ones until the response ends."""
    store = get_store()
    settings = get_settings()
    last = starting_after
    deadline = time.monotonic() + settings.background_stream_seconds
    while True:
        progress = await asyncio.to_thread(store.progress, response_id)
        if progress is None:
            return
        status, _, next_seq = progress
        for seq, data in await asyncio.to_thread(store.events, response_id, last, next_seq):
            last = seq
            yield data
            if any(f'"type":"{kind}"' in data[:60] for kind in _TERMINAL_EVENTS):
                return
        if status in _TERMINAL:
            if status == "failed":
                # the state machine marked it failed (the worker could not): end the stream the same way
                yield await _failed_event(tenant, response_id, next_seq)
            return
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(settings.background_poll_seconds)


async def _failed_event(tenant: str, response_id: str, seq: int) -> str:
    response = await asyncio.to_thread(get_store().get, tenant, response_id)
    assert response is not None
    response.error = response.error or ResponseError(code="server_error", message="The background run failed.")
    return ResponseFailedEvent(response=response, sequence_number=seq).model_dump_json()


async def check_streamable(tenant: str, response_id: str) -> None:
    """Only background responses keep their events; anything else is a clear 4xx before the stream starts."""
    response = await asyncio.to_thread(get_store().get, tenant, response_id)
    if response is None:
        raise not_found(response_id)
    if not response.background:
        raise InvalidRequestError("Only responses created with background=true can be streamed again.", param="stream")
