"""Amazon Bedrock as the model, through the Converse API (``ConverseStream``) and the function's IAM role.

boto3 is synchronous, so each stream is read by its own daemon thread that hands the parsed events to the
event loop through an ``asyncio.Queue`` (a thread per stream, not ``asyncio.to_thread``: the default executor
has a few dozen workers and a long stream would hold one for its whole length). Closing the generator (the
client went away, the task was cancelled) closes the HTTP stream and stops the thread. boto3 is imported and
the client created on first use, in that thread, so importing this module does no I/O.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from engine.observability import logger
from engine.providers.base import ChatRequest, ProviderError, ProviderEvent
from engine.providers.bedrock.convert import converse
from engine.providers.bedrock.decode import Decoder
from engine.providers.bedrock.errors import provider_error

if TYPE_CHECKING:
    from engine.settings import Settings

__all__ = ["BedrockProvider"]


def _new_client(settings: Settings) -> Any:
    """A ``bedrock-runtime`` client (region: BEDROCK_REGION, else the function's own AWS_REGION)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.upstream_connect_timeout_seconds,
        read_timeout=settings.upstream_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 3},  # two retries (throttling, 5xx, connection)
        max_pool_connections=64,
        tcp_keepalive=True,
    )
    session = boto3.session.Session()  # not the module-level default session: that one is not thread-safe
    return session.client("bedrock-runtime", region_name=settings.bedrock_region or None, config=config)


class _Pump(threading.Thread):
    """Calls ``converse_stream`` and reads its event stream, handing ``(kind, value)`` to the event loop:
    ``("event", dict)`` per event, then ``("end", None)`` or ``("error", exception)``."""

    def __init__(
        self,
        client: Callable[[], Any],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[tuple[str, Any]],
    ) -> None:
        super().__init__(name="bedrock-stream", daemon=True)
        self._client, self._kwargs, self._loop, self._queue = client, kwargs, loop, queue
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopped.set()

    def run(self) -> None:
        stream = None
        try:
            stream = self._client().converse_stream(**self._kwargs)["stream"]
            with self._lock:
                self._stream = stream
            if self._stopped.is_set():
                return
            for event in stream:
                if self._stopped.is_set():
                    return
                self._put("event", event)
            self._put("end", None)
        except BaseException as exc:  # handed to the loop; nothing is raised in this thread
            if not self._stopped.is_set():
                self._put("error", exc)
        finally:
            if stream is not None:
                _close(stream)

    def stop(self) -> None:
        """Stop reading (from any thread, more than once): the reading thread is woken and closes the stream."""
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _interrupt(stream)


def _close(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # a stream that broke may complain on close; it is closed either way
        pass


def _interrupt(stream: Any) -> None:
    """Wake a thread blocked reading ``stream`` without blocking this one.

    Closing the response here would wait for the reader's buffer lock, i.e. for Bedrock's next bytes, with the
    event loop stuck behind it. Shutting the socket down (urllib3's ``HTTPResponse.shutdown``) ends the
    blocked read at once; the reading thread then closes the connection, which tells Bedrock to stop.
    """
    raw: Any = getattr(stream, "_raw_stream", None)  # botocore's EventStream reads this urllib3 response
    try:
        raw.shutdown()
        return
    except Exception:  # no socket to shut down (released, already closed, or not urllib3): close elsewhere
        pass
    threading.Thread(target=_close, args=(stream,), name="bedrock-stream-close", daemon=True).start()


class BedrockProvider:
    """Streams ``ConverseStream``; maps Bedrock errors, timeouts and broken streams to ProviderError."""

    name = "bedrock"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client_instance: Any = None
        self._client_lock = threading.Lock()

    def _client(self) -> Any:
        """The cached client, created on first use (called from the stream thread, never the event loop)."""
        with self._client_lock:
            if self._client_instance is None:
                self._client_instance = _new_client(self._settings)
            return self._client_instance

    async def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        try:
            kwargs, names = converse(request)
        except ProviderError:
            raise
        except Exception as exc:  # a message shape this mapping does not know: a bug here, not the caller's
            logger.exception("bedrock request mapping failed")
            message = f"The request could not be converted for Amazon Bedrock ({type(exc).__name__})."
            raise ProviderError(message) from exc
        decoder = Decoder(names)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        pump = _Pump(self._client, kwargs, asyncio.get_running_loop(), queue)
        pump.start()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise provider_error(value) from value
                for event in decoder.events(value):
                    yield event
        finally:
            pump.stop()
        if not decoder.finished:
            raise ProviderError("Amazon Bedrock's stream ended before the response was finished.")
