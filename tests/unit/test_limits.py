"""engine.limits on moto's DynamoDB: the function URL's per-key rate and quota (the usage plan's limits, which requests
through the URL skip), and the streaming app answering them with OpenAI's 429s while API Gateway requests pass."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from moto import mock_aws

from engine.auth import Identity, display_suffix, function_url_authenticator, hash_key
from engine.errors import RateLimitError
from engine.limits import QuotaExceededError, enforce_function_url_limits, quota_window
from engine.settings import get_settings
from engine.storage import get_request_counter
from engine.storage.keys import DynamoKeyStore, KeyRecord
from local.gateway import _load_module
from local.template import load_template

TABLE = "responses-limits-test"
NOW = datetime(2026, 3, 31, 23, 59, 58, tzinfo=UTC).timestamp()  # a Tuesday, the last day of March


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": TABLE,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "UPSTREAM_BASE_URL": "",
        "AUTH_MODE": "keys",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "FUNCTION_URL_RATE_LIMIT", "FUNCTION_URL_QUOTA_LIMIT", "FUNCTION_URL_QUOTA_PERIOD"):
        monkeypatch.delenv(key, raising=False)
    from engine.providers import get_provider
    from engine.storage import get_store

    caches = (get_settings, get_store, get_provider, function_url_authenticator, get_request_counter)
    with mock_aws():
        from local.aws import create_table

        create_table(load_template().table_properties, TABLE)
        for cached in caches:
            cached.cache_clear()
        yield monkeypatch
    for cached in caches:
        cached.cache_clear()


def _limits(monkeypatch: pytest.MonkeyPatch, rate: int = 0, quota: int = 0, period: str = "MONTH") -> None:
    monkeypatch.setenv("FUNCTION_URL_RATE_LIMIT", str(rate))
    monkeypatch.setenv("FUNCTION_URL_QUOTA_LIMIT", str(quota))
    monkeypatch.setenv("FUNCTION_URL_QUOTA_PERIOD", period)
    get_settings.cache_clear()


def test_quota_windows_are_utc_calendar_periods():
    def days(period: Any) -> tuple[str, str]:
        start, end = quota_window(NOW, period)
        return tuple(datetime.fromtimestamp(t, UTC).date().isoformat() for t in (start, end))  # type: ignore[return-value]

    assert days("DAY") == ("2026-03-31", "2026-04-01")
    assert days("WEEK") == ("2026-03-30", "2026-04-06")  # Monday to Monday
    assert days("MONTH") == ("2026-03-01", "2026-04-01")


def test_rate_is_counted_per_key_and_second(aws: pytest.MonkeyPatch):
    _limits(aws, rate=2)
    alice, bob = Identity("team-a", "key-a"), Identity("team-b", "key-b")
    enforce_function_url_limits(alice, NOW)
    enforce_function_url_limits(alice, NOW + 0.5)
    with pytest.raises(RateLimitError) as refused:
        enforce_function_url_limits(alice, NOW + 0.9)
    assert refused.value.status_code == 429
    assert refused.value.to_envelope()["error"] == {
        "message": "Rate limit reached for requests. Please try again in a moment.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    enforce_function_url_limits(bob, NOW + 0.9)  # another key has counters of its own
    enforce_function_url_limits(alice, NOW + 1.0)  # the next second is a new window


def test_quota_is_counted_per_usage_key_and_period(aws: pytest.MonkeyPatch):
    _limits(aws, quota=3, period="DAY")
    shared_a, shared_b = Identity("team-a", "key-a", "usage-shared"), Identity("team-b", "key-b", "usage-shared")
    enforce_function_url_limits(shared_a, NOW)
    enforce_function_url_limits(shared_b, NOW + 1)  # keys without a usage key of their own share one, as on the plan
    enforce_function_url_limits(shared_a, NOW + 1)
    with pytest.raises(QuotaExceededError) as spent:
        enforce_function_url_limits(shared_b, NOW + 1.5)
    assert spent.value.to_envelope()["error"]["type"] == "insufficient_quota"
    assert spent.value.code == "insufficient_quota" and spent.value.status_code == 429
    enforce_function_url_limits(shared_a, NOW + 3)  # 23:59:58 + 3 s is the next day


def test_no_limits_without_auth_or_settings(aws: pytest.MonkeyPatch):
    _limits(aws)  # 0 and 0: nothing is counted
    for _ in range(5):
        enforce_function_url_limits(Identity("team-a", "key-a"), NOW)
    _limits(aws, rate=1)
    aws.setenv("AUTH_MODE", "off")
    get_settings.cache_clear()
    for _ in range(5):
        enforce_function_url_limits(Identity("default"), NOW)


def test_function_url_requests_get_the_quota_429_and_gateway_ones_do_not(aws: pytest.MonkeyPatch):
    _limits(aws, quota=1, period="DAY")
    DynamoKeyStore(TABLE).add(
        KeyRecord(hash_key("sk-url"), "team-a", "active", int(time.time()), display_suffix("sk-url"))
    )
    spec = next(fn for fn in load_template().functions.values() if fn.streams)
    module, attr = spec.asgi_target()
    app = getattr(_load_module(spec, module), attr)
    body = {"model": "demo", "input": "hello", "store": False}

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://abc.lambda-url.us-east-1.on.aws") as http:
            url = {"authorization": "Bearer sk-url"}
            assert (await http.post("/responses", headers=url, json=body)).status_code == 200
            refused = await http.post("/responses", headers=url, json=body)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "insufficient_quota"
            # Through API Gateway the usage plan has already counted it: the function does not count again.
            context = {"authorizer": {"tenant": "team-a", "principalId": "team-a"}, "requestId": "r"}
            via_gateway = {"x-amzn-request-context": json.dumps(context)}
            assert (await http.post("/responses", headers=via_gateway, json=body)).status_code == 200

    asyncio.run(scenario())
