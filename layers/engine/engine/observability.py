"""Powertools Logger, Tracer and Metrics shared by the handlers and the engine."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment
from aws_lambda_powertools.utilities import jmespath_utils

from engine.coldstart import end_init

__all__ = ["bind_request", "inject_invocation_context", "logger", "metrics", "tracer"]


class _NoopSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class _NoopProvider(BaseProvider):
    """Stands in for X-Ray where tracing is off, so its SDK (≈300 ms of imports) never loads."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _NoopSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _NoopSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Any) -> None: ...
    def patch_all(self) -> None: ...


def _make_tracer() -> Tracer:
    # Powertools decides the same way (POWERTOOLS_TRACE_DISABLED, or not running in Lambda); it just imports
    # the X-Ray SDK before deciding. In a deployment with Tracing: Active this is the ordinary X-Ray Tracer.
    if Tracer._is_tracer_disabled():
        return Tracer(provider=_NoopProvider(), auto_patch=False)
    return Tracer()


logger = Logger()
tracer = _make_tracer()
metrics = Metrics()


def inject_invocation_context[H: Callable[..., Any]](
    handler: H | None = None, *, correlation_id_path: str | None = None
) -> Any:
    """Powertools' ``inject_lambda_context`` keys (function name, request id, cold start, correlation id) for
    this invocation only. Powertools appends them to the formatter, shared by every function of a process, so
    the local stack (all functions in one process, buffered ones on threads beside the streaming app) stamped one
    function's name and request id on another's lines; here they live in a copy of the context, which nothing
    else sees and which ends with the invocation."""

    def decorate(fn: H) -> H:
        cold = True
        end_init()  # the handler is made: the function's init is over (engine.coldstart)

        @functools.wraps(fn)
        def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal cold
            if cold:
                end_init()
            keys: dict[str, Any] = {"cold_start": cold, **build_lambda_context_model(context).__dict__}
            cold = False
            if correlation_id_path:
                keys["correlation_id"] = jmespath_utils.query(envelope=correlation_id_path, data=event)

            def invoke() -> Any:
                logger.thread_safe_clear_keys()
                logger.thread_safe_append_keys(**keys)
                return fn(event, context, *args, **kwargs)

            return contextvars.copy_context().run(invoke)

        return cast(H, wrapper)

    return decorate(handler) if handler is not None else decorate


def bind_request(correlation_id: str | None) -> None:
    """The streaming app's per-request log keys (each ASGI request runs in a task, with a context of its own)."""
    logger.thread_safe_clear_keys()
    if correlation_id:
        logger.thread_safe_append_keys(correlation_id=correlation_id)
