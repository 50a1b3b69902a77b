"""engine.auth and engine.cli.keys on moto, the template's gateway responses, and the streaming function's own key
check (the function URL has no authorizer): the ASGI app called directly, without an authorizer context."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest

from engine.api.tenancy import tenant_from_authorizer
from engine.auth import (
    INVALID_KEY_MESSAGE,
    MISSING_KEY_MESSAGE,
    AuthenticationError,
    Authenticator,
    bearer_token,
    display_suffix,
    function_url_authenticator,
    generate_key,
    hash_key,
)
from engine.settings import Settings, get_settings
from engine.storage.keys import DynamoKeyStore, KeyRecord
from local.gateway import _load_module, _render
from local.template import load_template
from tests.conftest import moto_table

TABLE = "responses-auth-test"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from engine.providers import get_provider
    from engine.storage import get_store

    env = {
        "TABLE_NAME": TABLE,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "UPSTREAM_BASE_URL": "",
        "AUTH_MODE": "keys",
    }
    unset = ("AWS_LAMBDA_FUNCTION_NAME", "USAGE_PLAN_ID", "AUTH_CACHE_SECONDS")
    caches = (get_settings, get_store, get_provider, function_url_authenticator)
    with moto_table(monkeypatch, TABLE, env=env, unset=unset, caches=caches):
        yield


def _record(key: str, tenant: str, **kwargs: Any) -> KeyRecord:
    fields: dict[str, Any] = {"status": "active", **kwargs}
    return KeyRecord(
        key_hash=hash_key(key), tenant=tenant, created_at=int(time.time()), suffix=display_suffix(key), **fields
    )


def _settings(**values: Any) -> Settings:
    return Settings.model_validate({"table_name": TABLE, **values})


def test_bearer_token():
    assert bearer_token("Bearer sk-abc") == "sk-abc"
    assert bearer_token("bearer   sk-abc  ") == "sk-abc"
    assert bearer_token("Basic dXNlcjpwYXNz") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token("sk-abc") is None
    assert bearer_token("") is None and bearer_token(None) is None


def test_generated_keys_and_their_hashes():
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"sk-[A-Za-z0-9_-]{48}", k) for k in keys)
    key = next(iter(keys))
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(key)) and hash_key(key) == hash_key(key)
    assert display_suffix(key) == f"sk-…{key[-4:]}"


def test_keys_mode(aws: None):
    store = DynamoKeyStore(TABLE)
    store.add(_record("sk-good", "team-a", usage_key="usage-own"))
    store.add(_record("sk-shared", "team-b"))
    store.add(_record("sk-gone", "team-c", status="revoked"))
    auth = Authenticator(_settings(auth_mode="keys"), usage_key="usage-shared")
    good = auth.authenticate("sk-good")
    assert (good.tenant, good.key_id, good.usage_key) == ("team-a", hash_key("sk-good")[:12], "usage-own")
    assert auth.authenticate("sk-shared").usage_key == "usage-shared"
    for token in ("sk-gone", "sk-unknown", "x" * 600):
        with pytest.raises(AuthenticationError) as caught:
            auth.authenticate(token)
        assert caught.value.status_code == 401
        assert caught.value.to_envelope() == {
            "error": {
                "message": INVALID_KEY_MESSAGE,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    with pytest.raises(AuthenticationError) as missing:
        auth.authenticate(None)
    assert missing.value.message == MISSING_KEY_MESSAGE and missing.value.code == "invalid_api_key"


def test_revocation_shows_after_the_cache_time(aws: None):
    store = DynamoKeyStore(TABLE)
    store.add(_record("sk-soon-revoked", "team-a"))
    auth = Authenticator(_settings(auth_mode="keys"), cache_seconds=0.3)
    assert auth.authenticate("sk-soon-revoked").tenant == "team-a"
    assert store.revoke(hash_key("sk-soon-revoked")) is not None
    assert auth.authenticate("sk-soon-revoked").tenant == "team-a"  # cached
    time.sleep(0.35)
    with pytest.raises(AuthenticationError):
        auth.authenticate("sk-soon-revoked")
    # Unknown keys are cached too (a flood of bad keys costs one read each per cache time).
    with pytest.raises(AuthenticationError):
        auth.authenticate("sk-later")
    store.add(_record("sk-later", "team-b"))
    with pytest.raises(AuthenticationError):
        auth.authenticate("sk-later")
    time.sleep(0.35)
    assert auth.authenticate("sk-later").tenant == "team-b"


@pytest.mark.parametrize("shape", ["plain", "json"])
def test_single_mode_reads_one_key_from_secrets_manager(aws: None, shape: str):
    secret = boto3.client("secretsmanager", region_name="us-east-1")
    value = "sk-the-only-key" if shape == "plain" else json.dumps({"api_key": "sk-the-only-key"})
    arn = secret.create_secret(Name=f"api-key-{shape}", SecretString=value)["ARN"]
    auth = Authenticator(
        _settings(auth_mode="single", api_key_secret_arn=arn, default_tenant="me"), usage_key="usage-shared"
    )
    identity = auth.authenticate("sk-the-only-key")
    assert (identity.tenant, identity.usage_key) == ("me", "usage-shared")
    for token in ("sk-the-only-kez", None):
        with pytest.raises(AuthenticationError):
            auth.authenticate(token)


def test_off_mode_is_refused_inside_lambda(aws: None, monkeypatch: pytest.MonkeyPatch):
    auth = Authenticator(_settings(auth_mode="off", default_tenant="local"))
    assert auth.authenticate(None).tenant == "local" and auth.authenticate("anything").tenant == "local"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deployed")
    with pytest.raises(AuthenticationError):
        auth.authenticate("anything")


def test_tenant_from_authorizer_fails_closed(monkeypatch: pytest.MonkeyPatch):
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("AUTH_MODE", "keys")
        assert tenant_from_authorizer({"tenant": "team-a", "principalId": "team-a"}) == "team-a"
        for context in (None, {}, {"principalId": "x"}):
            with pytest.raises(AuthenticationError):
                tenant_from_authorizer(context)
        monkeypatch.setenv("AUTH_MODE", "off")
        get_settings.cache_clear()
        assert tenant_from_authorizer(None) == get_settings().default_tenant
    finally:
        get_settings.cache_clear()


# --- the template's gateway responses --------------------------------------------------------------------------


def _gateway_body(kind: str) -> tuple[int | None, dict[str, Any]]:
    spec = load_template().api.gateway_responses[kind]
    assert spec.template is not None
    variables = {
        "httpMethod": "GET",
        "path": "/v1/nope",
        "error.message": 'a "quoted" message',
        "error.messageString": json.dumps('a "quoted" message'),
    }
    return spec.status, json.loads(_render(spec.template, variables))


def test_gateway_responses_are_openai_envelopes():
    responses = load_template().api.gateway_responses
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "THROTTLED", "QUOTA_EXCEEDED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        responses
    )
    for kind in responses:
        _, body = _gateway_body(kind)
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, kind
        assert body["error"]["message"], kind
    # The engine's 401s (streaming function's own check) and the gateway's are the same bytes of JSON.
    assert _gateway_body("UNAUTHORIZED") == (401, AuthenticationError(MISSING_KEY_MESSAGE).to_envelope())
    assert _gateway_body("ACCESS_DENIED") == (401, AuthenticationError().to_envelope())
    status, throttled = _gateway_body("THROTTLED")
    assert status == 429 and throttled["error"]["code"] == "rate_limit_exceeded"
    assert responses["THROTTLED"].headers == {"Retry-After": "1"}
    assert _gateway_body("QUOTA_EXCEEDED")[0] == 429
    assert _gateway_body("MISSING_AUTHENTICATION_TOKEN") == (
        404,
        {
            "error": {
                "message": "Invalid URL (GET /v1/nope)",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )
    assert _gateway_body("DEFAULT_5XX")[1]["error"]["message"] == 'a "quoted" message'


def test_template_wires_the_authorizer():
    api = load_template().api
    assert api.authorizer is not None and api.authorizer.function.logical_id == "AuthorizerFunction"
    assert api.authorizer.identity_headers == ("Authorization",) and api.authorizer.ttl_seconds == 300
    assert api.api_key_required and api.api_key_source == "AUTHORIZER"
    assert api.usage_plan is not None and api.usage_plan.rate_limit > 0


# --- python -m engine.cli.keys ------------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from engine.cli.keys import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_cli_create_list_revoke(aws: None, capsys: pytest.CaptureFixture[str]):
    code, out, err = _cli(capsys, "create", "--tenant", "team-a", "--name", "laptop")
    key = out.strip()
    assert code == 0 and re.fullmatch(r"sk-[A-Za-z0-9_-]{48}", key) and "shown only this once" in err
    _cli(capsys, "create", "--tenant", "team-b")
    # The table holds the hash, never the key.
    scanned = json.dumps(boto3.client("dynamodb").scan(TableName=TABLE)["Items"])
    assert key not in scanned and hash_key(key) in scanned and key[-4:] in scanned
    auth = Authenticator(_settings(auth_mode="keys"))
    assert auth.authenticate(key).tenant == "team-a"

    code, out, _ = _cli(capsys, "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(r["tenant"] for r in rows) == ["team-a", "team-b"]
    mine = next(r for r in rows if r["tenant"] == "team-a")
    assert mine == {**mine, "id": hash_key(key)[:12], "status": "active", "key": display_suffix(key), "name": "laptop"}
    code, out, _ = _cli(capsys, "list", "--tenant", "team-a")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "TENANT", "STATUS"] and len(out.splitlines()) == 2

    code, out, _ = _cli(capsys, "revoke", mine["id"][:8])
    assert code == 0 and "revoked" in out
    with pytest.raises(AuthenticationError):
        auth.authenticate(key)
    assert json.loads(_cli(capsys, "list", "--json", "--tenant", "team-a")[1])["status"] == "revoked"
    assert _cli(capsys, "revoke", "sk-never-made")[0] == 1
    assert _cli(capsys, "revoke", "abc")[0] == 1  # too short a prefix


def test_keys_cli_usage_plan_key(aws: None, capsys: pytest.CaptureFixture[str]):
    apigateway = boto3.client("apigateway")
    plan = apigateway.create_usage_plan(name="tier-1")["id"]
    code, out, _ = _cli(capsys, "create", "--tenant", "team-a", "--usage-plan-id", plan)
    key = out.strip()
    record = DynamoKeyStore(TABLE).get(hash_key(key))
    assert code == 0 and record is not None and record.usage_key and record.usage_key_id
    in_plan = apigateway.get_usage_plan_keys(usagePlanId=plan)["items"]
    assert [k["id"] for k in in_plan] == [record.usage_key_id]
    assert (
        Authenticator(_settings(auth_mode="keys"), usage_key="shared").authenticate(key).usage_key == record.usage_key
    )
    assert _cli(capsys, "revoke", key)[0] == 0
    assert apigateway.get_api_key(apiKey=record.usage_key_id)["enabled"] is False


# --- the streaming function's own check (function URL) --------------------------------------------------------


def _stream_app() -> Any:
    spec = next(fn for fn in load_template().functions.values() if fn.streams)
    module, attr = spec.asgi_target()
    return getattr(_load_module(spec, module), attr)


async def _call(
    method: str, path: str, *, key: str | None = None, context: dict[str, Any] | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if context is not None:
        headers["x-amzn-request-context"] = json.dumps(context)
    transport = httpx.ASGITransport(app=_stream_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://abc.lambda-url.us-east-1.on.aws") as http:
        return await http.request(method, path, headers=headers, **kwargs)


def test_function_url_requests_check_the_key_themselves(aws: None):
    store = DynamoKeyStore(TABLE)
    store.add(_record("sk-url-a", "team-a"))
    store.add(_record("sk-url-b", "team-b"))
    # What a function URL forwards: a context without an authorizer (LWA replaces any client-sent one).
    url_context = {"domainName": "abc.lambda-url.us-east-1.on.aws", "http": {"method": "POST"}, "authorizer": None}
    body = {"model": "demo", "input": "hello"}

    async def scenario() -> None:
        missing = await _call("POST", "/responses", json=body)
        assert missing.status_code == 401
        assert missing.json() == AuthenticationError(MISSING_KEY_MESSAGE).to_envelope()
        bad = await _call("POST", "/responses", key="sk-nope", json=body, context=url_context)
        assert bad.status_code == 401 and bad.json() == AuthenticationError().to_envelope()
        created = await _call("POST", "/responses", key="sk-url-a", json=body, context=url_context)
        assert created.status_code == 200, created.text
        rid = created.json()["id"]
        assert (await _call("GET", f"/v1/responses/{rid}", key="sk-url-a")).status_code == 200
        other = await _call("GET", f"/v1/responses/{rid}", key="sk-url-b")
        assert other.status_code == 404 and other.json()["error"]["message"] == f"Response with id '{rid}' not found."
        assert (await _call("GET", f"/v1/responses/{rid}", key="sk-nope")).status_code == 401
        streamed = await _call("POST", "/responses", key="sk-nope", json={**body, "stream": True})
        assert streamed.status_code == 401 and streamed.headers["content-type"].startswith("application/json")
        # Through API Gateway the authorizer already decided: its tenant is used, the bearer is not re-checked.
        via_gateway = {"authorizer": {"tenant": "team-a", "principalId": "team-a"}, "requestId": "r"}
        assert (await _call("GET", f"/responses/{rid}", context=via_gateway)).status_code == 200
        # An authorizer context without a tenant is not trusted: the key is checked.
        assert (
            await _call("GET", f"/responses/{rid}", context={"authorizer": {"principalId": "x"}})
        ).status_code == 401

    asyncio.run(scenario())
