"""The background worker's entry point: one state machine step, made idempotent with Powertools so a step
that Step Functions retries after it had finished returns its first result instead of running the model again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from engine.providers import get_provider
from engine.responses.background import run_step
from engine.settings import get_settings

__all__ = ["idempotency_config", "run_step_once"]


@lru_cache(maxsize=1)
def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(event_key_jmespath="[response_id, step]", expires_after_seconds=24 * 3600)


@lru_cache(maxsize=1)
def _runner() -> Callable[..., dict[str, Any]]:
    # Idempotency records share the table: a static partition, the TTL attribute every item uses.
    persistence = DynamoDBPersistenceLayer(
        table_name=get_settings().table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="IDEMPOTENCY",
        expiry_attr="expires_at",
    )

    @idempotent_function(data_keyword_argument="step_input", config=idempotency_config(), persistence_store=persistence)
    def run(step_input: dict[str, Any]) -> dict[str, Any]:
        return asyncio.run(_step(step_input["response_id"], int(step_input["step"])))

    return run


async def _step(response_id: str, step: int) -> dict[str, Any]:
    """One step on this invocation's event loop; the upstream's HTTP session is bound to that loop, so it is
    closed with it (each step runs on a new loop: a session left open would leak its connections)."""
    try:
        return await run_step(response_id, step)
    finally:
        aclose = getattr(get_provider(), "aclose", None)
        if aclose is not None:
            await aclose()


def run_step_once(step_input: dict[str, Any]) -> dict[str, Any]:
    return _runner()(step_input=step_input)
