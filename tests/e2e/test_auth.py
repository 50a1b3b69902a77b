"""Authentication, tenant isolation, retention and rate limits, through the openai client against the local stack
with ``API_KEYS`` set (its own stack: the shared one runs with auth off, which the last test checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import openai
import pytest

from engine.auth import INVALID_KEY_MESSAGE, MISSING_KEY_MESSAGE
from local.stack import running_stack
from tests.conftest import wait_for_response

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "sk-e2e-team-a-000000000000000000000000000000000001"
KEY_B = "sk-e2e-team-b-000000000000000000000000000000000002"
TERMINAL = {"completed", "failed", "incomplete", "cancelled"}
SLOW = "SLOW 100\nREPLY " + " ".join(f"w{n}" for n in range(40))


def _envelope(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}


@dataclass
class Stack:
    base_url: str
    aws_endpoint_url: str
    table_name: str

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0)

    def http(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def ddb(self) -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.aws_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def items(self, response_id: str) -> list[dict[str, Any]]:
        """Every item of a response in the table (a scan: nothing can hide under another key)."""
        ddb, rows, kwargs = self.ddb(), [], {"TableName": self.table_name}
        while True:
            page = ddb.scan(**kwargs)
            rows += [r for r in page["Items"] if response_id in r["pk"]["S"] + r["sk"]["S"]]
            if "LastEvaluatedKey" not in page:
                return rows
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def expire(self, response_id: str) -> None:
        """Move the clock past a response's retention: every item's expires_at into the past (DynamoDB deletes
        expired items up to two days late, and moto never does, so readers must treat them as gone)."""
        ddb, past = self.ddb(), str(int(time.time()) - 10)
        items = self.items(response_id)
        assert items
        for item in items:
            ddb.update_item(
                TableName=self.table_name,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET expires_at = :past",
                ExpressionAttributeValues={":past": {"N": past}},
            )

    def keys_cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "layers" / "engine"),
            "TABLE_NAME": self.table_name,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        env.pop("USAGE_PLAN_ID", None)
        return subprocess.run(
            [sys.executable, "-m", "engine.cli.keys", *argv], env=env, capture_output=True, text=True, check=True
        )


def _start(upstream_url: str, env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(upstream_base_url=upstream_url, env=env) as base_url:
        health = httpx.get(base_url.removesuffix("/v1") + "/_local/health").json()
        assert health["auth_mode"] == "keys"
        yield Stack(base_url, health["aws_endpoint_url"], health["table_name"])


@pytest.fixture(scope="module")
def auth_stack(upstream_url: str) -> Iterator[Stack]:
    env = {
        "API_KEYS": f"{KEY_A}:team-a,{KEY_B}:team-b",
        # A short authorizer cache, so a revoked key is refused within the test.
        "AUTH_CACHE_SECONDS": "1",
        "UPSTREAM_TIMEOUT_SECONDS": "2",
        "BACKGROUND_STEP_SECONDS": "0.05",
    }
    yield from _start(upstream_url, env)


ROUTES = [
    ("GET", "/responses"),
    ("POST", "/responses"),
    ("GET", "/responses/resp_x"),
    ("DELETE", "/responses/resp_x"),
    ("POST", "/responses/resp_x/cancel"),
    ("GET", "/responses/resp_x/input_items"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_key(auth_stack: Stack, method: str, path: str):
    body: dict[str, Any] = {"json": {"model": "m", "input": "hi"}} if method == "POST" else {}
    with auth_stack.http(None) as http:
        missing = http.request(method, path, **body)
    assert missing.status_code == 401 and missing.json() == _envelope(MISSING_KEY_MESSAGE)
    for wrong in ("Bearer sk-not-a-key", f"Bearer {KEY_A}x", "Bearer", "Basic dXNlcjpwYXNz", KEY_A):
        with auth_stack.http(None) as http:
            refused = http.request(method, path, headers={"Authorization": wrong}, **body)
        assert refused.status_code == 401, (wrong, refused.text)
        assert refused.json() == _envelope(INVALID_KEY_MESSAGE)


def test_a_bad_key_through_the_openai_client(auth_stack: Stack):
    client = auth_stack.client("sk-not-a-key")
    calls: list[Callable[[], Any]] = [
        lambda: client.responses.create(model="m", input="hi"),
        lambda: client.responses.create(model="m", input="hi", stream=True),
        lambda: client.responses.retrieve("resp_x"),
        lambda: client.responses.delete("resp_x"),
        lambda: client.responses.cancel("resp_x"),
        lambda: client.responses.input_items.list("resp_x"),
    ]
    for call in calls:
        with pytest.raises(openai.AuthenticationError) as caught:
            call()
        assert caught.value.status_code == 401
        assert caught.value.body == _envelope(INVALID_KEY_MESSAGE)["error"]
        assert caught.value.code == "invalid_api_key"


def test_a_key_made_with_the_cli_works_until_revoked(auth_stack: Stack):
    made = auth_stack.keys_cli("create", "--tenant", "team-c", "--name", "e2e")
    key = made.stdout.strip()
    assert key.startswith("sk-") and len(key) == 51 and "shown only this once" in made.stderr
    client = auth_stack.client(key)
    created = client.responses.create(model="m", input="REPLY from team c")
    assert created.output_text == "from team c"
    rows = [
        json.loads(line) for line in auth_stack.keys_cli("list", "--json", "--tenant", "team-c").stdout.splitlines()
    ]
    assert [(r["tenant"], r["status"], r["key"]) for r in rows] == [("team-c", "active", f"sk-…{key[-4:]}")]
    auth_stack.keys_cli("revoke", rows[0]["id"])
    time.sleep(1.3)  # the authorizer cache (AUTH_CACHE_SECONDS=1)
    for call in (
        lambda: client.responses.retrieve(created.id),  # streaming function's route
        lambda: client.responses.input_items.list(created.id),  # a buffered one
        lambda: client.responses.create(model="m", input="again"),
    ):
        with pytest.raises(openai.AuthenticationError) as caught:
            call()
        assert caught.value.body == _envelope(INVALID_KEY_MESSAGE)["error"]


def _not_found(call: Callable[[], Any], response_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        call()
    assert caught.value.body == {
        "message": f"Response with id '{response_id}' not found.",
        "type": "invalid_request_error",
        "param": "response_id",
        "code": None,
    }


def _chain_refused(client: openai.OpenAI, previous: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input="next", previous_response_id=previous)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_tenants_cannot_see_each_others_responses(auth_stack: Stack):
    a, b = auth_stack.client(KEY_A), auth_stack.client(KEY_B)
    first = a.responses.create(model="m", input="REPLY secret of team a")
    second = a.responses.create(model="m", input="REPLY more", previous_response_id=first.id)
    for rid in (first.id, second.id):
        _not_found(partial(b.responses.retrieve, rid), rid)
        _not_found(partial(b.responses.input_items.list, rid), rid)
        _not_found(partial(b.responses.delete, rid), rid)
        _not_found(partial(b.responses.cancel, rid), rid)
        _chain_refused(b, rid)
        with auth_stack.http(KEY_B) as http:
            resumed = http.get(f"/responses/{rid}", params={"stream": "true"})
        assert resumed.status_code == 404 and resumed.json()["error"]["param"] == "response_id"
    with auth_stack.http(KEY_B) as http:
        listed_b = [r["id"] for r in http.get("/responses", params={"limit": 100}).json()["data"]]
    with auth_stack.http(KEY_A) as http:
        listed_a = [r["id"] for r in http.get("/responses", params={"limit": 100}).json()["data"]]
    assert first.id not in listed_b and second.id not in listed_b
    assert listed_a[:2] == [second.id, first.id]
    # B's attempts changed nothing: A still reads, chains from and owns both.
    assert a.responses.retrieve(second.id).output_text == "more"
    third = a.responses.create(model="m", input="what came before?", previous_response_id=second.id)
    assert third.output_text.startswith("roles=user,assistant,user,assistant,user;")  # the whole chain was loaded


def test_tenants_cannot_cancel_or_follow_each_others_background_runs(auth_stack: Stack):
    a, b = auth_stack.client(KEY_A), auth_stack.client(KEY_B)
    created = a.responses.create(model="m", input=SLOW, background=True)
    wait_for_response(a, created.id, lambda r: r.status == "in_progress")
    _not_found(lambda: b.responses.cancel(created.id), created.id)
    with auth_stack.http(KEY_B) as http:
        resumed = http.get(f"/responses/{created.id}", params={"stream": "true", "starting_after": "0"})
    assert resumed.status_code == 404
    assert a.responses.retrieve(created.id).status == "in_progress"
    assert a.responses.cancel(created.id).status == "cancelled"


def test_an_expired_response_is_gone_everywhere(auth_stack: Stack):
    a = auth_stack.client(KEY_A)
    first = a.responses.create(model="m", input="REPLY old")
    second = a.responses.create(model="m", input="REPLY newer", previous_response_id=first.id)
    background = a.responses.create(model="m", input="REPLY ran in the background", background=True)
    wait_for_response(a, background.id, lambda r: r.status in TERMINAL)
    auth_stack.expire(first.id)
    auth_stack.expire(background.id)
    for rid in (first.id, background.id):
        _not_found(partial(a.responses.retrieve, rid), rid)
        _not_found(partial(a.responses.input_items.list, rid), rid)
        _not_found(partial(a.responses.delete, rid), rid)
        _not_found(partial(a.responses.cancel, rid), rid)
        _chain_refused(a, rid)
    with auth_stack.http(KEY_A) as http:
        listed = [r["id"] for r in http.get("/responses", params={"limit": 100}).json()["data"]]
        resumed = http.get(f"/responses/{background.id}", params={"stream": "true"})
    assert first.id not in listed and background.id not in listed and second.id in listed
    assert resumed.status_code == 404
    # The later turn itself is still there, but its chain lost its start: it can no longer be continued.
    assert a.responses.retrieve(second.id).output_text == "newer"
    _chain_refused(a, second.id)


def test_delete_leaves_nothing_behind(auth_stack: Stack):
    a = auth_stack.client(KEY_A)
    inputs: Any = [{"role": "user", "content": f"part {n}"} for n in range(4)] + [
        {"role": "user", "content": "REPLY x"}
    ]
    foreground = a.responses.create(model="m", input=inputs)
    background = a.responses.create(model="m", input="REPLY in the background", background=True)
    wait_for_response(a, background.id, lambda r: r.status in TERMINAL)
    names = {"META", "IN", "OUT", "EVT", "JOB"}
    kinds = {
        rid: {part for i in auth_stack.items(rid) for part in i["sk"]["S"].split("#") if part in names}
        for rid in (foreground.id, background.id)
    }
    assert kinds[foreground.id] >= {"META", "IN", "OUT"} and kinds[background.id] >= {"META", "IN", "OUT", "EVT"}
    for rid in (foreground.id, background.id):
        a.responses.delete(rid)  # the SDK returns None; an error would raise
        assert auth_stack.items(rid) == []


@pytest.fixture(scope="module")
def limited_stack(upstream_url: str) -> Iterator[Stack]:
    """A stack of its own, with a per-key limit of 1 request/s and a burst of 3."""
    env = {"API_KEYS": f"{KEY_A}:team-a,{KEY_B}:team-b", "LOCAL_RATE_LIMIT": "1", "LOCAL_BURST_LIMIT": "3"}
    yield from _start(upstream_url, env)


def test_websocket_upgrade_checks_the_key_and_keeps_tenants_apart(auth_stack: Stack):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = auth_stack.base_url.replace("http://", "ws://") + "/responses"
    # $connect's authorizer: no key is a 401 without a call, an unknown key a 403 (API Gateway's answers)
    for headers, status in (({}, 401), ({"Authorization": "Bearer sk-unknown"}, 403)):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == status
    # A stored response made over team A's socket belongs to team A, as over HTTP
    with auth_stack.client(KEY_A).responses.connect() as conn:
        conn.send({"type": "response.create", "model": "m", "input": "REPLY mine"})
        done = next(e for e in conn if e.type in ("response.completed", "error"))
    assert done.type == "response.completed"
    assert auth_stack.client(KEY_A).responses.retrieve(done.response.id).output_text == "mine"
    with auth_stack.client(KEY_B).responses.connect() as conn:
        conn.send({"type": "response.create", "model": "m", "input": "x", "previous_response_id": done.response.id})
        error = next(e for e in conn if e.type in ("response.completed", "error"))
    assert error.type == "error" and error.error.code == "previous_response_not_found"


def test_the_usage_plan_throttles_each_key(limited_stack: Stack):
    a, b = limited_stack.client(KEY_A), limited_stack.client(KEY_B)
    outcomes: list[str] = []
    throttled: openai.RateLimitError | None = None
    for _ in range(6):
        try:
            a.responses.retrieve("resp_missing")
        except openai.NotFoundError:
            outcomes.append("allowed")
        except openai.RateLimitError as exc:
            outcomes.append("throttled")
            throttled = exc
    assert outcomes[:3] == ["allowed"] * 3 and "throttled" in outcomes[3:]
    assert throttled is not None and throttled.status_code == 429
    assert throttled.body == {
        "message": "Rate limit reached for requests. Please try again in a moment.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert throttled.response.headers["retry-after"] == "1"
    # Another key has its own bucket; the first one refills at the plan's rate.
    with pytest.raises(openai.NotFoundError):
        b.responses.retrieve("resp_missing")
    time.sleep(1.1)
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve("resp_missing")


def test_with_auth_off_any_bearer_or_none_is_the_default_tenant(stack: str):
    """The shared stack runs without API_KEYS: auth off, one tenant (the banner says so)."""
    health = httpx.get(stack.removesuffix("/v1") + "/_local/health").json()
    assert health["auth_mode"] == "off"
    created = openai.OpenAI(base_url=stack, api_key="sk-anything", max_retries=0).responses.create(
        model="m", input="REPLY open"
    )
    other = openai.OpenAI(base_url=stack, api_key="sk-something-else", max_retries=0)
    assert other.responses.retrieve(created.id).output_text == "open"
    assert httpx.get(f"{stack}/responses/{created.id}").status_code == 200  # no Authorization header at all
