"""The real ``shared/statemachine/background.asl.json``, executed by moto's Step Functions interpreter.

moto runs in process (``mock_aws`` with the local stack's config: executions run, Lambda without Docker), the
state machine and its Lambda function are created the way the local stack creates them
(``local.aws.create_state_machines``), and the Lambda dispatch of ``local.moto_server`` calls a fake worker
registered here, so this tests the ASL (loop, Retry, Catch, MarkFailed, stop) and the dispatch, not the
engine's worker.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from local.aws import create_state_machines, create_table
from local.moto_server import MOTO_CONFIG, RuntimeFailure, install_lambda_dispatch, template_resolver
from local.template import load_template
from tests.conftest import moto_aws

TABLE = "responses-sfn-test"
WORKER = "WorkerFunction"
MACHINE = "BackgroundStateMachine"


class StepRetryable(Exception):
    """The name the ASL's Retry matches (the worker's own class may live anywhere; only the name counts)."""


@dataclass
class Harness:
    sfn: Any
    table: Any
    machine_arn: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    worker: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def start(self, response_id: str) -> str:
        started = self.sfn.start_execution(
            stateMachineArn=self.machine_arn,
            name=response_id,
            input=json.dumps({"response_id": response_id, "step": 0}),
        )
        return str(started["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            described = dict(self.sfn.describe_execution(executionArn=execution_arn))
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise AssertionError(f"{execution_arn} still RUNNING after {timeout}s")
            time.sleep(0.02)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return list(self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])

    def meta(self, response_id: str, status: str) -> None:
        self.table.put_item(Item={"pk": f"RESP#{response_id}", "sk": "META", "status": status})

    def status(self, response_id: str) -> dict[str, Any]:
        return dict(self.table.get_item(Key={"pk": f"RESP#{response_id}", "sk": "META"})["Item"])


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    template = load_template()
    with moto_aws(monkeypatch, config=MOTO_CONFIG):
        h = Harness(sfn=None, table=None, machine_arn="")

        def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
            h.calls.append(event)
            assert context.function_name == WORKER and context.get_remaining_time_in_millis() > 0
            assert h.worker is not None, "no fake worker set"
            return h.worker(event)

        undo = install_lambda_dispatch(lambda name: (worker, 900) if name == WORKER else None)
        try:
            create_table(template.table_properties, TABLE)
            h.sfn = boto3.client("stepfunctions")
            h.table = boto3.resource("dynamodb").Table(TABLE)
            h.machine_arn = create_state_machines(template, TABLE)[MACHINE]
            yield h
        finally:
            undo()


def _next(event: dict[str, Any], done: bool) -> dict[str, Any]:
    return {"response_id": event["response_id"], "step": event["step"] + 1, "done": done}


def test_loops_until_the_worker_is_done(harness: Harness):
    harness.worker = lambda event: _next(event, done=event["step"] == 2)
    started = time.monotonic()
    result = harness.wait(harness.start("resp_loop"))
    assert result["status"] == "SUCCEEDED", result
    assert [c["step"] for c in harness.calls] == [0, 1, 2]
    assert all(c["response_id"] == "resp_loop" for c in harness.calls)
    assert json.loads(result["output"]) == {"response_id": "resp_loop", "step": 3, "done": True}
    assert time.monotonic() - started < 5


def test_step_retryable_is_retried(harness: Harness):
    failures = iter([StepRetryable("upstream 429")])

    def worker(event: dict[str, Any]) -> dict[str, Any]:
        failure = next(failures, None)
        if failure:
            raise failure
        return _next(event, done=True)

    harness.worker = worker
    arn = harness.start("resp_retry")
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    assert [c["step"] for c in harness.calls] == [0, 0]
    failed = [e for e in harness.history(arn) if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["StepRetryable"]


def test_worker_error_marks_the_response_failed(harness: Harness):
    def worker(event: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bad state")

    harness.worker = worker
    harness.meta("resp_fail", "in_progress")
    arn = harness.start("resp_fail")
    assert harness.wait(arn)["status"] == "FAILED"
    assert len(harness.calls) == 1  # not in the Retry list: straight to Catch
    meta = harness.status("resp_fail")
    assert meta["status"] == "failed" and meta["error_code"] == "server_error"
    # the error's name and cause are kept for retrieve, and the job row (sealed credentials) is gone
    assert meta["error_name"] == "ValueError" and "bad state" in meta["error_cause"]
    assert "Item" not in harness.table.get_item(Key={"pk": "RESP#resp_fail", "sk": "JOB"})
    events = harness.history(arn)
    assert [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"] == ["ValueError"]
    assert [e["executionFailedEventDetails"]["error"] for e in events if e["type"] == "ExecutionFailed"] == [
        "WorkerFailed"
    ]


def test_mark_failed_keeps_a_cancelled_response(harness: Harness):
    def worker(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("cancelled under our feet")

    harness.worker = worker
    harness.meta("resp_cancelled", "cancelled")
    harness.table.put_item(Item={"pk": "RESP#resp_cancelled", "sk": "JOB", "job": "{}"})
    arn = harness.start("resp_cancelled")
    assert harness.wait(arn)["status"] == "SUCCEEDED"  # ConditionalCheckFailed caught -> Finished
    assert harness.status("resp_cancelled") == {"pk": "RESP#resp_cancelled", "sk": "META", "status": "cancelled"}
    assert "Item" not in harness.table.get_item(Key={"pk": "RESP#resp_cancelled", "sk": "JOB"})


def test_stop_execution_aborts_a_running_execution(harness: Harness):
    entered, release = threading.Event(), threading.Event()

    def worker(event: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        return _next(event, done=False)

    harness.worker = worker
    arn = harness.start("resp_stop")
    try:
        assert entered.wait(5), "the worker was never invoked"
        # The execution ARN the cancel function derives from STATE_MACHINE_ARN and the response id.
        assert arn == harness.machine_arn.replace(":stateMachine:", ":execution:") + ":resp_stop"
        harness.sfn.stop_execution(executionArn=arn, error="Cancelled", cause="cancelled by the client")
    finally:
        # moto quirk: the execution reads RUNNING until the Lambda call in flight returns (AWS reports ABORTED
        # at once; neither can interrupt the invocation itself, hence the worker's own status checks).
        release.set()
    assert harness.wait(arn)["status"] == "ABORTED"
    assert len(harness.calls) == 1  # done=false, yet no further step after the stop


def test_runtime_errors_keep_their_error_type(harness: Harness):
    """A handler that cannot even be imported fails the task as Lambda does: ``Runtime.ImportModuleError``."""

    def worker(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeFailure("Runtime.ImportModuleError", "Unable to import module 'app': boom")

    harness.worker = worker
    harness.meta("resp_import", "queued")
    arn = harness.start("resp_import")
    assert harness.wait(arn)["status"] == "FAILED"
    failed = [e["taskFailedEventDetails"]["error"] for e in harness.history(arn) if e["type"] == "TaskFailed"]
    assert failed == ["Runtime.ImportModuleError"]
    assert harness.status("resp_import")["status"] == "failed"


def test_template_resolver_serves_only_buffered_functions():
    resolve = template_resolver()
    assert resolve("NoSuchFunction") is None
    assert resolve("StreamFunction") is None  # Lambda Web Adapter's app, never invoked by a state machine
    found = resolve(WORKER)
    assert found is not None and callable(found[0]) and found[1] == load_template().functions[WORKER].timeout


def test_retries_spent_mark_the_response_failed_with_the_workers_reason(harness: Harness):
    def worker(event: dict[str, Any]) -> dict[str, Any]:
        raise StepRetryable("DynamoDB failed before the step started: ReadTimeoutError")

    harness.worker = worker
    harness.meta("resp_spent", "in_progress")
    assert harness.wait(harness.start("resp_spent"), timeout=30)["status"] == "FAILED"
    assert len(harness.calls) == 4  # the first attempt and the ASL's three retries
    meta = harness.status("resp_spent")
    from engine.storage.responses import _machine_error

    error = _machine_error(meta)
    assert meta["status"] == "failed" and error["code"] == "server_error"
    assert error["message"] == (
        "The background run failed after its retries: DynamoDB failed before the step started: ReadTimeoutError"
    )
