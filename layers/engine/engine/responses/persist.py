"""Storing a finished foreground response so that what the client is told and what is stored never disagree.

A write whose outcome is unknown (DynamoDB timed out past boto's own retries: the request may still land) is
retried: the response's rows have fixed keys and fixed content, so writing them again is idempotent, and the
terminal event waits until one attempt is acknowledged (``store_retry_seconds`` in all). Only when no attempt
was acknowledged in that time does the stream end ``failed`` with a message that says the outcome is unknown.

A client that disconnects from a ``store: true`` stream does not lose the response: generation stops (nobody
is reading and the upstream's tokens cost money) and what was produced is stored as ``cancelled``, open items
``incomplete``, under a cancel shield so the disconnect cannot interrupt the write itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from engine.conversations import append_to_conversation
from engine.observability import logger
from engine.settings import get_settings
from engine.storage import get_store

if TYPE_CHECKING:
    from engine.models.events import ResponseStreamEvent
    from engine.models.request import ResponseCreateParams
    from engine.models.response import Response
    from engine.streaming import ResponseStream

__all__ = ["store_abandoned", "store_finished"]

_UNKNOWN = (
    "The response could not be stored: the database did not acknowledge the write in time, so whether it was "
    "stored is unknown. Retrieve it by id to find out."
)


class CreateRun(Protocol):
    """What storing reads of a create (``engine.responses.create.CreateRun`` has it; typed here so that this module
    does not import the one that calls it)."""

    @property
    def tenant(self) -> str: ...
    @property
    def params(self) -> ResponseCreateParams: ...
    @property
    def response(self) -> Response: ...
    @property
    def input_items(self) -> list[dict[str, Any]]: ...
    @property
    def ancestors(self) -> list[str]: ...


async def _put_acknowledged(run: CreateRun) -> None:
    """Write the response until one attempt is acknowledged, or raise the last error once time is up."""
    deadline = time.monotonic() + get_settings().store_retry_seconds
    delay = 0.2
    while True:
        try:
            await asyncio.to_thread(get_store().put, run.tenant, run.response, run.input_items, run.ancestors)
            return
        except Exception:
            if time.monotonic() + delay >= deadline:
                raise
            logger.warning("storing the response failed; writing it again", exc_info=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def store_finished(run: CreateRun, stream: ResponseStream) -> list[ResponseStreamEvent]:
    """Store a response that reached its end; the events to send before the terminal one (none, or the
    ``error`` of a write that was never acknowledged)."""
    if not run.response.store:
        return []
    try:
        await _put_acknowledged(run)
    except Exception:
        logger.exception("storing the response failed")
        return stream.fail("server_error", _UNKNOWN)
    try:
        await append_to_conversation(run.tenant, run.params, run.response, run.input_items)
    except Exception:
        # the response is stored as the client is told; only its conversation misses it
        logger.exception("appending the response to its conversation failed")
    return []


async def store_abandoned(run: CreateRun, stream: ResponseStream) -> None:
    """The client of a ``store: true`` stream went away before the end: keep what was produced, ``cancelled``."""
    if not run.response.store:
        return
    import anyio

    if run.response.status in ("in_progress", "queued"):
        stream.abandon()
    # else it had already ended (the client left during the closing events): stored as it ended
    with anyio.CancelScope(shield=True):
        try:
            await _put_acknowledged(run)
        except Exception:
            logger.exception("storing an abandoned response failed")
