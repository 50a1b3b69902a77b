"""Powertools Logger, Tracer and Metrics shared by the handlers and the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

__all__ = ["logger", "metrics", "tracer"]


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
