"""Each function invoked with its sample event from ``events/``, as Lambda would, on moto's DynamoDB."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.gateway import LambdaContext, _load_module
from local.template import FunctionSpec, load_template
from tests.conftest import moto_table

ROOT = Path(__file__).resolve().parents[2]
RESPONSE_ID = "resp_0123456789abcdef0123456789abcdef"


def _functions() -> dict[str, FunctionSpec]:
    """Every function of template.yaml (API routes and the state machine's worker), by code directory."""
    return {spec.code_dir.name: spec for spec in load_template().functions.values()}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, the table created from template.yaml, the engine's cached clients reset."""
    from engine.providers import get_provider
    from engine.settings import get_settings
    from engine.storage import get_store

    env = {
        "TABLE_NAME": "responses-test",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "UPSTREAM_BASE_URL": "",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:BackgroundStateMachine",
    }
    with moto_table(monkeypatch, "responses-test", env=env, caches=(get_settings, get_store, get_provider)):
        yield


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "events" / f"{name}.json").read_text()))


def _invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
    spec = _functions()[name]
    module, attr = spec.handler.rsplit(".", 1)
    handler = getattr(_load_module(spec, module), attr)
    return dict(handler(event, LambdaContext(function_name=spec.logical_id, aws_request_id="test")))


async def _asgi_invoke(event: dict[str, Any]) -> httpx.Response:
    """The streaming function the way Lambda Web Adapter runs it: the v1 event as an HTTP request to the app."""
    spec = _functions()["stream"]
    module, attr = spec.asgi_target()
    app = getattr(_load_module(spec, module), attr)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lambda") as http:
        return await http.request(
            event["httpMethod"],
            event["requestContext"]["path"],
            headers={**event["headers"], "x-amzn-request-context": json.dumps(event["requestContext"])},
            content=event["body"],
        )


def test_every_function_has_a_sample_event():
    assert sorted(_functions()) == sorted(p.stem for p in (ROOT / "events").glob("*.json"))


def test_sample_events_drive_every_function(aws: None):
    created = asyncio.run(_asgi_invoke(_event("stream")))
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["status"] == "completed" and "demo model" in body["output"][0]["content"][0]["text"]

    def with_id(name: str) -> dict[str, Any]:
        event = json.loads(json.dumps(_event(name)).replace(RESPONSE_ID, body["id"]))
        return dict(event)

    # GET /responses/{id} is the streaming function's second route (one sample event per function: this one
    # is the DELETE event with the method changed).
    get = with_id("delete_response")
    get["httpMethod"] = get["requestContext"]["httpMethod"] = "GET"
    got = asyncio.run(_asgi_invoke(get))
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    items = _invoke("list_input_items", with_id("list_input_items"))
    assert items["statusCode"] == 200 and json.loads(items["body"])["data"][0]["role"] == "user"
    listed = _invoke("list_responses", _event("list_responses"))
    assert listed["statusCode"] == 200 and json.loads(listed["body"])["data"][0]["id"] == body["id"]
    deleted = _invoke("delete_response", with_id("delete_response"))
    assert deleted["statusCode"] == 200 and json.loads(deleted["body"])["deleted"] is True
    gone = asyncio.run(_asgi_invoke(get))
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "response_id"


@pytest.mark.parametrize(
    "name",
    ["cancel_response", "worker"],
)
def test_background_functions_take_their_sample_events(aws: None, name: str):
    """The sample ids name no stored response: cancel answers 404, the worker reports the step done."""
    if name == "cancel_response":
        result = _invoke(name, _event(name))
        assert result["statusCode"] == 404, result
        assert json.loads(result["body"])["error"]["param"] == "response_id"
    else:
        event = _event(name)
        assert event == {"response_id": RESPONSE_ID, "step": 0}  # what the state machine passes
        assert _invoke(name, event) == {"response_id": RESPONSE_ID, "step": 1, "done": True}


def test_authorizer_takes_its_sample_event(aws: None, monkeypatch: pytest.MonkeyPatch):
    """API Gateway's REQUEST authorizer event: Allow with the tenant (and the usage-plan key) for a stored key,
    Deny for an unknown, revoked or missing one."""
    import time

    from engine.auth import display_suffix, hash_key
    from engine.storage.keys import DynamoKeyStore, KeyRecord

    monkeypatch.setenv("USAGE_IDENTIFIER_KEY", "usage-shared-key-0123456789")
    spec = _functions()["authorizer"]
    module = _load_module(spec, spec.handler.rsplit(".", 1)[0])
    module.authenticator.cache_clear()
    event = _event("authorizer")
    assert event["type"] == "REQUEST" and event["headers"]["Authorization"].startswith("Bearer ")
    key = event["headers"]["Authorization"].removeprefix("Bearer ")
    store = DynamoKeyStore("responses-test")
    store.add(KeyRecord(hash_key(key), "team-a", "active", int(time.time()), display_suffix(key)))

    allowed = _invoke("authorizer", event)
    assert allowed == {
        "principalId": "team-a",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    # the cached answer serves every route of the stage
                    "Resource": ["arn:aws:execute-api:us-east-1:123456789012:abcdef1234/v1/*/*"],
                }
            ],
        },
        "context": {"tenant": "team-a", "key_id": hash_key(key)[:12]},
        "usageIdentifierKey": "usage-shared-key-0123456789",
    }
    # a path with a colon in it (the policy is written by hand, not by Powertools' ARN parser)
    colon = {**event, "methodArn": event["methodArn"].rsplit("/", 1)[0] + "/resp_1:cancel"}
    assert _invoke("authorizer", colon)["policyDocument"] == allowed["policyDocument"]

    def denied(evt: dict[str, Any]) -> bool:
        result = _invoke("authorizer", evt)
        statements = result["policyDocument"]["Statement"]
        return [s["Effect"] for s in statements] == ["Deny"] and "context" not in result

    unknown = json.loads(json.dumps(event).replace(key, "sk-unknown"))
    no_header = {**event, "headers": {k: v for k, v in event["headers"].items() if k != "Authorization"}}
    assert denied(unknown) and denied(no_header)
    store.revoke(hash_key(key))
    assert denied(event)
    module.authenticator.cache_clear()


CONVERSATION_ID = "conv_0123456789abcdef0123456789abcdef"
ITEM_ID = "msg_0123456789abcdef0123456789abcdef"
CONVERSATION_FUNCTIONS = (
    "create_conversation",
    "get_conversation",
    "update_conversation",
    "list_conversation_items",
    "create_conversation_items",
    "get_conversation_item",
    "delete_conversation_item",
    "delete_conversation",
)


def test_conversation_functions_take_their_sample_events(aws: None):
    """Each conversation function with its sample event, on one conversation: create, read, update, items
    (list, add, get, delete), delete; then the sample ids (no such conversation) answer 404."""

    def call(name: str, conversation_id: str, item_id: str = ITEM_ID) -> tuple[int, Any]:
        text = json.dumps(_event(name)).replace(CONVERSATION_ID, conversation_id).replace(ITEM_ID, item_id)
        result = _invoke(name, json.loads(text))
        return result["statusCode"], json.loads(result["body"])

    status, conv = call("create_conversation", CONVERSATION_ID)
    assert status == 200 and conv["object"] == "conversation" and conv["id"].startswith("conv_")
    cid = conv["id"]
    assert call("get_conversation", cid) == (200, conv)
    status, updated = call("update_conversation", cid)
    assert status == 200 and updated["metadata"] == {"topic": "renamed"}
    status, added = call("create_conversation_items", cid)
    assert status == 200 and [i["content"][0]["text"] for i in added["data"]] == ["One more."]
    status, page = call("list_conversation_items", cid)
    assert status == 200 and [i["content"][0]["text"] for i in page["data"]] == ["Hello!", "One more."]
    first = page["data"][0]["id"]
    assert call("get_conversation_item", cid, first) == (200, page["data"][0])
    status, after_delete = call("delete_conversation_item", cid, first)
    assert status == 200 and after_delete["id"] == cid
    assert call("get_conversation_item", cid, first)[0] == 404
    assert call("delete_conversation", cid) == (200, {"id": cid, "object": "conversation.deleted", "deleted": True})
    for name in CONVERSATION_FUNCTIONS[1:]:
        status, body = call(name, cid)
        assert status == 404 and body["error"]["param"] == "conversation_id", name


def test_compact_function_takes_its_sample_event(aws: None, monkeypatch: pytest.MonkeyPatch):
    """The demo model summarizes; the answer is the retained user message plus one sealed compaction item."""
    monkeypatch.setenv("REASONING_KEY", "integration-test-key")
    from engine.sealing import _keyring
    from engine.settings import get_settings

    get_settings.cache_clear()
    _keyring.cache_clear()
    answer = _invoke("compact_response", _event("compact_response"))
    assert answer["statusCode"] == 200, answer["body"]
    body = json.loads(answer["body"])
    assert body["object"] == "response.compaction" and body["usage"]["total_tokens"] > 0
    user, compaction = body["output"]
    assert user["role"] == "user" and user["content"][0]["text"].startswith("We agreed to launch on Tuesday")
    assert compaction["type"] == "compaction" and compaction["encrypted_content"].startswith("cmp2.")
    assert "demo model" not in compaction["encrypted_content"]
    missing = _event("compact_response")
    missing["body"] = json.dumps({"input": "Compact this conversation."})
    refused = _invoke("compact_response", missing)
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"])["error"]["param"] == "model"
    _keyring.cache_clear()


def test_file_search_functions_take_their_sample_events(aws: None):
    """Files and vector stores on moto's DynamoDB: list files, create a store (no files: no S3, no execution),
    list an unknown store's files (404), and the ingest task for a file that is in no store (skipped)."""
    listed = _invoke("files", _event("files"))
    assert listed["statusCode"] == 200 and json.loads(listed["body"])["data"] == []
    created = _invoke("vector_stores", _event("vector_stores"))
    store = json.loads(created["body"])
    assert created["statusCode"] == 200 and store["object"] == "vector_store" and store["metadata"] == {"team": "docs"}
    unknown = _invoke("vector_store_files", _event("vector_store_files"))
    assert unknown["statusCode"] == 404 and json.loads(unknown["body"])["error"]["param"] == "vector_store_id"
    assert _invoke("ingest", _event("ingest")) == {"status": "skipped"}
