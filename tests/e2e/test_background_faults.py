"""Background runs under faults: a cancel noticed while the upstream is silent, retried steps, no plaintext MCP
credentials at rest during or after a run, and no job row left on any terminal path."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

from local.mcp_servers import mcp_server
from local.stack import stack_table
from tests.conftest import UpstreamLog, wait_for_response

TERMINAL = {"completed", "failed", "incomplete", "cancelled"}
SECRET_TOKEN = "tok-7f3a9c-never-at-rest"
SECRET_HEADER = "hdr-51b2e8-never-at-rest"


def _scan(stack: str) -> list[dict[str, Any]]:
    ddb, table = stack_table(stack)
    rows: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        rows += page["Items"]
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _job_rows(stack: str, response_id: str) -> list[dict[str, Any]]:
    return [r for r in _scan(stack) if r["pk"]["S"] == f"RESP#{response_id}" and r["sk"]["S"] == "JOB"]


def _in_flight(upstream: UpstreamLog) -> int:
    return int(httpx.get(f"{upstream.root}/_stats").json()["in_flight"])


def test_cancel_is_noticed_while_the_upstream_is_silent(client: openai.OpenAI, upstream: UpstreamLog, stack: str):
    # Given a background run whose upstream accepted the request and then sends nothing
    created = client.responses.create(model="m", input="HANG", background=True)
    deadline = time.monotonic() + 10
    while _in_flight(upstream) == 0:
        assert time.monotonic() < deadline, "the upstream never got the request"
        time.sleep(0.02)
    # When it is cancelled
    assert client.responses.cancel(created.id).status == "cancelled"
    cancelled_at = time.monotonic()
    while _in_flight(upstream) and time.monotonic() - cancelled_at < 5:
        time.sleep(0.01)
    # Then the worker drops the upstream well before the stack's 2 s upstream timeout could
    assert _in_flight(upstream) == 0
    assert time.monotonic() - cancelled_at < 1.0
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert _job_rows(stack, created.id) == []


def test_a_retryable_upstream_error_retries_the_step_then_fails_with_the_upstreams_reason(
    client: openai.OpenAI, upstream: UpstreamLog, stack: str
):
    created = client.responses.create(model="m", input="FAIL 503", background=True)
    final = wait_for_response(client, created.id, lambda r: r.status in TERMINAL, timeout=60)
    assert final.status == "failed" and final.error is not None and final.error.code == "server_error"
    assert "HTTP 503" in final.error.message
    chat = [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    assert len(chat) == 3  # the first attempt and two retried steps (BACKGROUND_STEP_RETRIES)
    assert _job_rows(stack, created.id) == []


def test_a_client_error_is_not_retried(client: openai.OpenAI, upstream: UpstreamLog):
    created = client.responses.create(model="m", input="FAIL 400", background=True)
    final = wait_for_response(client, created.id, lambda r: r.status in TERMINAL)
    assert final.status == "failed" and final.error is not None and final.error.code == "invalid_prompt"
    assert final.model_dump()["error"]["type"] == "invalid_request_error"
    assert len([r for r in upstream.requests() if r["path"].endswith("/chat/completions")]) == 1


def test_mcp_credentials_are_sealed_at_rest_during_and_after_a_run(client: openai.OpenAI, stack: str):
    with mcp_server("streamable-http") as url:
        tool: Any = {
            "type": "mcp",
            "server_label": "calc",
            "server_url": url,
            "require_approval": "never",
            "authorization": SECRET_TOKEN,
            "headers": {"X-Api-Key": SECRET_HEADER},
        }
        created = client.responses.create(model="m", input='CALL slow {"seconds": 1.5}', tools=[tool], background=True)
        seen_job = False
        while True:
            rows = _scan(stack)
            dump = repr(rows)
            assert SECRET_TOKEN not in dump and SECRET_HEADER not in dump, "a credential is stored in plaintext"
            seen_job = seen_job or any(r["pk"]["S"] == f"RESP#{created.id}" and r["sk"]["S"] == "JOB" for r in rows)
            status = client.responses.retrieve(created.id).status
            if status in TERMINAL:
                break
            time.sleep(0.1)
        final = client.responses.retrieve(created.id)
    # the run used the credentials it kept sealed (the MCP call ran), and nothing of them remains
    assert final.status == "completed", final.error
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert seen_job, "the scan never saw the job row while the run was going"
    dump = repr(_scan(stack))
    assert SECRET_TOKEN not in dump and SECRET_HEADER not in dump
    assert _job_rows(stack, created.id) == []
