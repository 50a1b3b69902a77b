"""Shared fixtures: the scripted model on loopback, the local stack in front of it, the official client; and
``moto_table``, moto in process with the table made from template.yaml."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from local.aws import create_table
from local.scripted_upstream import UpstreamConfig, serve
from local.stack import running_stack
from local.template import load_template


class UpstreamLog:
    """What the scripted model received, for asserting what the server sent upstream."""

    def __init__(self, base_url: str) -> None:
        self.root = base_url.removesuffix("/v1")

    def clear(self) -> None:
        httpx.delete(f"{self.root}/_requests").raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.root}/_requests").json()["requests"])

    def last_messages(self) -> list[dict[str, Any]]:
        chat = [r for r in self.requests() if r["path"].endswith("/chat/completions")]
        return list(chat[-1]["body"]["messages"])


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    with serve(UpstreamConfig()) as url:
        yield url


@pytest.fixture
def upstream(upstream_url: str) -> UpstreamLog:
    log = UpstreamLog(upstream_url)
    log.clear()
    return log


@pytest.fixture(scope="session")
def stack(upstream_url: str) -> Iterator[str]:
    """``make serve``'s code path in a child process, with the scripted model as upstream."""
    # Background steps of 50 ms: every model turn of a background run is its own state machine step.
    env = {"UPSTREAM_TIMEOUT_SECONDS": "2", "BACKGROUND_STEP_SECONDS": "0.05"}
    with running_stack(upstream_base_url=upstream_url, env=env) as base_url:
        yield base_url


@pytest.fixture
def client(stack: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack, api_key="sk-local", max_retries=0)


@pytest.fixture
def http(stack: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack, timeout=30, headers={"Authorization": "Bearer sk-local"}) as c:
        yield c


@contextmanager
def moto_aws(
    monkeypatch: pytest.MonkeyPatch,
    *,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    config: Any = None,
) -> Iterator[None]:
    """moto in process (``config``: moto's, e.g. to run state machines), test credentials, ``env`` set, ``unset``
    and any endpoint override removed."""
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **(env or {}),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", *unset):
        monkeypatch.delenv(key, raising=False)
    with mock_aws(config=config):
        yield


@contextmanager
def moto_table(
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    *,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    caches: tuple[Callable[..., Any], ...] = (),
) -> Iterator[None]:
    """:func:`moto_aws` with ``table`` created from template.yaml's definition; the engine's cached factories in
    ``caches`` are cleared on the way in and out (so none keeps a client of another test)."""
    with moto_aws(monkeypatch, env=env, unset=unset):
        create_table(load_template().table_properties, table)
        for cached in caches:
            cached.cache_clear()  # type: ignore[attr-defined]
        yield
    for cached in caches:
        cached.cache_clear()  # type: ignore[attr-defined]


def wait_for_response(
    client: openai.OpenAI, response_id: str, until: Callable[[Any], bool], timeout: float = 30
) -> Any:
    """Retrieve ``response_id`` every 50 ms until ``until(response)`` holds; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if until(response):
            return response
        assert time.monotonic() < deadline, f"{response_id} still {response.status} after {timeout} s"
        time.sleep(0.05)
