"""engine.coldstart: the collector is paused only on Lambda, and a made handler always turns it back on."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from engine import coldstart
from engine.observability import inject_invocation_context


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does, the suite goes on with the collector on and nothing frozen."""
    try:
        yield
    finally:
        coldstart._paused = coldstart._begun = False
        gc.unfreeze()
        gc.enable()


def test_off_lambda_the_collector_is_left_alone(collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    coldstart._begun = False
    coldstart.begin_init()
    assert gc.isenabled()


def test_on_lambda_init_runs_without_it_and_making_the_handler_freezes_and_resumes(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    coldstart._begun = False  # a fresh process: the engine was imported before this test
    coldstart.begin_init()
    assert not gc.isenabled()
    made_during_init = [object() for _ in range(1000)]
    frozen_before = gc.get_freeze_count()

    @inject_invocation_context
    def handler(event: dict[str, Any], context: Any) -> str:
        return "ok"

    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(made_during_init) // 2
    coldstart.begin_init()  # once per process: a later engine import does not pause it again
    assert gc.isenabled()
