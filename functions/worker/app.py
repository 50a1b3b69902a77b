"""The background worker: one step of the state machine (``shared/statemachine/background.asl.json``).

Input ``{"response_id", "step"}``; output ``{"response_id", "step", "done"}``. Powertools Idempotency makes a
retried step return the first attempt's result instead of calling the model again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.observability import inject_invocation_context, metrics, tracer
from engine.responses.worker import idempotency_config, run_step_once

if TYPE_CHECKING:
    # annotations only: the first import that runs is the engine's, so init's GC pause (engine.coldstart) covers
    # Powertools' imports too
    from aws_lambda_powertools.utilities.typing import LambdaContext


@inject_invocation_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config().register_lambda_context(context)
    return run_step_once(step_input={"response_id": event["response_id"], "step": int(event.get("step", 0))})
