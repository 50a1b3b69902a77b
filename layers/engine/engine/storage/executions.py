"""Step Functions executions of background responses: one execution per response, named by its id, so the
response id alone finds it (start, and a best-effort stop on cancel)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from engine.storage import clients

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient

__all__ = ["StepFunctionsExecutions"]


class StepFunctionsExecutions:
    """``Executions`` on one Standard state machine."""

    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    @cached_property
    def client(self) -> SFNClient:
        return clients.stepfunctions()

    def start(self, response_id: str) -> None:
        """Start the run of a queued response (its first step)."""
        self.client.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=response_id,
            input=f'{{"response_id": "{response_id}", "step": 0}}',
        )

    def stop(self, response_id: str) -> None:
        """Stop the run of a cancelled response (the record already says cancelled; the worker checks it)."""
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:")
        self.client.stop_execution(executionArn=f"{arn}:{response_id}", error="Cancelled")
