"""Background responses: queued by the streaming function, run step by step by the Step Functions worker,
streamed (and resumed) from their stored events, cancelled through the response record.

The record in DynamoDB is the source of truth. Each worker step runs turns for a bounded time, publishing
events as it goes and committing output and events with a write conditional on ``in_progress``, so a cancel
(a conditional write to ``cancelled``) wins over anything the worker does afterwards. Before every model and
tool call, and at every event flush, the worker checks the status and stops once the response is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from engine.errors import APIError, InvalidRequestError
from engine.models.events import ResponseFailedEvent, ResponseStreamEvent
from engine.models.request import ResponseCreateParams
from engine.models.response import Response, ResponseError
from engine.observability import logger
from engine.responses.create import CreateRun, prepare_create
from engine.responses.failures import failure_of
from engine.responses.job_secrets import open_job_params, seal_job_params
from engine.responses.loop import LoopState, TurnLoop
from engine.responses.retry import StepRetryable, is_retryable, retry
from engine.responses.stored import not_found
from engine.settings import get_settings
from engine.storage import get_executions, get_store
from engine.streaming import ResponseStream

__all__ = ["StepRetryable", "check_streamable", "replay", "run_step", "submit"]

_TERMINAL = {"completed", "failed", "incomplete", "cancelled"}
_TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


class Cancelled(Exception):
    """The response was cancelled while this worker was running it."""


def _encode(events: list[ResponseStreamEvent]) -> list[tuple[int, str]]:
    return [(e.sequence_number, e.model_dump_json()) for e in events]


# --- submit (the streaming function) ---------------------------------------------------------------------------


async def submit(run: CreateRun) -> list[ResponseStreamEvent]:
    """Store the queued response with its first events and job (MCP credentials sealed), then start its
    execution. A run that cannot be started is stored ``failed`` without its job, and the client gets a 500."""
    run.response.background = True
    run.response.status = "queued"
    stream = run.new_stream()
    first = stream.start()
    params = run.params.model_dump(mode="json", by_alias=True, exclude_unset=True)
    job = {
        "tenant": run.tenant,
        "params": seal_job_params(params, run.tenant),
        "state": LoopState(tool_choice=run.params.tool_choice).model_dump(mode="json"),
    }
    store = get_store()
    await asyncio.to_thread(
        store.create_background, run.tenant, run.response, run.input_items, run.ancestors, job, _encode(first)
    )
    try:
        await asyncio.to_thread(get_executions().start, run.response.id)
    except Exception:
        logger.exception("starting a background run failed", extra={"response_id": run.response.id})
        await _fail_unstarted(run, stream)
        raise APIError("The background run could not be started.") from None
    return first


async def _fail_unstarted(run: CreateRun, stream: ResponseStream) -> None:
    """queued → failed for a run whose execution never started; the commit removes its job."""
    store = get_store()
    try:
        if await asyncio.to_thread(store.start_background, run.response.id):
            run.response.status = "in_progress"
            events = stream.fail("server_error", "The background run could not be started.")
            events.append(stream.terminal())
            await asyncio.to_thread(
                store.commit_progress,
                run.response,
                n_out=len(run.response.output),
                new_output=[],
                events=_encode(events),
                next_seq=stream.next_sequence_number,
                job=None,
            )
    except Exception:
        logger.exception("marking an unstarted background run failed", extra={"response_id": run.response.id})


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
        self.committed_seq = stream.next_sequence_number

    async def add(self, events: list[ResponseStreamEvent]) -> None:
        self.pending.extend(events)
        if time.monotonic() - self.last >= self.interval:
            await self.commit()

    async def commit(self, *, final: bool = False, save_job: bool = False) -> None:
        """Commit settled output and pending events; ``save_job`` also writes the job (its loop state), a final
        commit removes it."""
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
            save_job=final or save_job,
        )
        self.last = time.monotonic()
        self.committed_seq = self.stream.next_sequence_number
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


async def _watch_cancel(response_id: str, interval: float) -> None:
    """Return once the response is no longer in progress: a cancel is noticed within ``interval`` (plus one
    read) even while the upstream is silent and no event would reach a checkpoint."""
    while True:
        await asyncio.sleep(interval)
        try:
            progress = await asyncio.to_thread(get_store().progress, response_id)
        except Exception:  # a failed read proves nothing; the step's own writes will tell
            logger.warning("reading a background run's status failed", extra={"response_id": response_id})
            continue
        if progress is None or progress[0] != "in_progress":
            return


async def run_step(response_id: str, step: int) -> dict[str, Any]:
    """One state machine step: run turns for at most ``background_step_seconds``, commit, say whether done.
    Raises ``StepRetryable`` for a retryable fault that left nothing of this step committed (see ``retry``)."""
    store = get_store()
    done = {"response_id": response_id, "step": step + 1, "done": True}
    try:
        job = await asyncio.to_thread(store.job, response_id)
        progress = await asyncio.to_thread(store.progress, response_id)
        if progress is None or progress[0] in _TERMINAL:
            if job is not None:  # a terminal run keeps no job (it holds sealed credentials): clean up after it
                await asyncio.to_thread(store.drop_job, response_id)
            return done
        if job is None:
            return done
        started_now = progress[0] == "queued"
        if started_now and not await asyncio.to_thread(store.start_background, response_id):
            return done
        response = await asyncio.to_thread(store.get, job["tenant"], response_id)
    except Exception as exc:
        if is_retryable(exc):  # only reads so far (and an idempotent queued → in_progress)
            raise StepRetryable(f"DynamoDB failed before the step started: {type(exc).__name__}") from exc
        raise
    if response is None:
        return done
    step_task = asyncio.ensure_future(_run_turns(response_id, step, job, response, progress, started_now))
    watcher = asyncio.ensure_future(_watch_cancel(response_id, get_settings().background_cancel_poll_seconds))
    try:
        await asyncio.wait({step_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not step_task.done():
        # cancelled (or deleted) while the upstream or a tool was silent: stop it, close its connections
        step_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Cancelled):
            await step_task
        logger.info("background response cancelled while waiting", extra={"response_id": response_id})
        return done
    try:
        return step_task.result()
    except Cancelled:
        logger.info("background response cancelled while running", extra={"response_id": response_id})
        return done


async def _run_turns(
    response_id: str,
    step: int,
    job: dict[str, Any],
    response: Response,
    progress: tuple[str, int, int],
    started_now: bool,
) -> dict[str, Any]:
    settings = get_settings()
    done = {"response_id": response_id, "step": step + 1, "done": True}
    _, n_out, next_seq = progress
    try:
        params = ResponseCreateParams.model_validate(open_job_params(job["params"], job["tenant"]))
        run = await prepare_create(params, job["tenant"], background_of=response)
    except Exception as exc:
        if is_retryable(exc):
            raise StepRetryable(f"The step could not start: {type(exc).__name__}") from exc
        # e.g. the chain it continues was deleted meanwhile: the run ends failed, saying why
        stream = ResponseStream(response, next_seq)
        response.status = "in_progress"
        failure = failure_of(exc)
        events = stream.fail(failure.code, failure.message, type_=failure.type)
        events.append(stream.terminal())
        await asyncio.to_thread(
            get_store().commit_progress,
            response,
            n_out=n_out,
            new_output=[],
            events=_encode(events),
            next_seq=stream.next_sequence_number,
            job=None,
            save_job=True,
        )
        return done
    # tools listed by an earlier step are in this response's own output
    run.tools.remember_listings([item.model_dump() for item in response.output])
    state = LoopState.model_validate(job["state"])
    stream = run.new_stream(sequence_start=next_seq)
    response.status = "in_progress"
    publisher = _Publisher(run, stream, n_out, job, settings.background_flush_seconds)
    loop = TurnLoop(run.loop_inputs(), stream, state, checkpoint=lambda: _checkpoint(response_id))
    deadline = time.monotonic() + settings.background_step_seconds
    try:
        if started_now:
            await publisher.add(stream.in_progress())
        if not state.prelude_done:
            async for event in loop.prelude():
                await publisher.add([event])
        while not state.done and time.monotonic() < deadline:
            if stream.next_sequence_number != publisher.committed_seq or publisher.pending:
                # a turn boundary: what a retried step would start from
                job["state"] = state.model_dump(mode="json")
                await publisher.commit(save_job=True)
            turn_start = stream.next_sequence_number
            try:
                async for event in loop.turn():
                    await publisher.add([event])
            except Exception as exc:
                if stream.next_sequence_number == turn_start and retry(job, exc):
                    await asyncio.to_thread(get_store().save_job, response_id, job)
                    raise StepRetryable(f"The upstream failed, the step is retried: {exc}") from exc
                raise
        if not state.done:
            job["state"] = state.model_dump(mode="json")
            job.pop("retries", None)
            await publisher.commit(save_job=True)
            return {"response_id": response_id, "step": step + 1, "done": False}
        await publisher.add(loop.finish())
    except (Cancelled, StepRetryable):
        raise
    except Exception as exc:  # any other fault ends the run failed, with its reason
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
    # One small read per poll (events are read only when the record counts new ones); while nothing changes the
    # poll backs off to background_poll_max_seconds, so an idle follower costs ~1 read a second, not 10.
    interval, seen = settings.background_poll_seconds, None
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
        changed, seen = progress != seen, progress
        fastest = settings.background_poll_seconds
        interval = fastest if changed else min(interval * 2, max(settings.background_poll_max_seconds, fastest))
        await asyncio.sleep(interval)


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
