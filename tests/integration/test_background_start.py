"""A background run whose execution cannot start: stored ``failed`` with its reason, no job row left behind
(it holds the request's sealed MCP credentials), and the create answers OpenAI's 500 envelope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import boto3
import pytest

from tests.conftest import moto_table

TABLE = "responses-start-test"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in process with the table but no state machine: StartExecution fails."""
    from engine import storage
    from engine.providers import get_provider
    from engine.settings import get_settings

    env = {
        "TABLE_NAME": TABLE,
        "UPSTREAM_BASE_URL": "",
        "REASONING_KEY": "test-key",
        "MCP_ALLOW_PRIVATE_NETWORKS": "true",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:NotThere",
    }
    caches = (get_settings, get_provider, storage.get_store, storage.get_executions)
    with moto_table(monkeypatch, TABLE, env=env, caches=caches):
        yield


def test_a_run_that_cannot_start_is_stored_failed_without_its_job(aws: None):
    from engine.errors import APIError
    from engine.models.request import ResponseCreateParams
    from engine.responses.background import submit
    from engine.responses.create import prepare_create
    from engine.storage import get_store

    tool = {
        "type": "mcp",
        "server_label": "calc",
        "server_url": "http://127.0.0.1:9/mcp",
        "authorization": "tok-start-failure",
    }
    params = ResponseCreateParams.model_validate({"model": "m", "input": "hi", "background": True, "tools": [tool]})

    async def create() -> str:
        run = await prepare_create(params, "tenant-a")
        with pytest.raises(APIError) as caught:
            await submit(run)
        assert caught.value.status_code == 500 and caught.value.type == "server_error"
        return run.response.id

    response_id = asyncio.run(create())
    stored = get_store().get("tenant-a", response_id)
    assert stored is not None and stored.status == "failed"
    assert stored.error is not None and stored.error.message == "The background run could not be started."
    rows = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert not [r for r in rows if r["sk"]["S"] == "JOB"]
    assert "tok-start-failure" not in repr(rows)
