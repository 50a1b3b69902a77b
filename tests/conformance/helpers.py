"""Small helpers shared by the conformance tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL_STATUSES = ("completed", "failed", "incomplete", "cancelled")
SDK_ONLY_KEYS = frozenset({"parsed", "parsed_arguments"})


def without_parsed(value: Any) -> Any:
    """The stream helper returns a ParsedResponse: its SDK-only ``parsed`` (messages) and ``parsed_arguments``
    (function calls) keys are not part of the wire object."""
    if isinstance(value, dict):
        return {k: without_parsed(v) for k, v in value.items() if k not in SDK_ONLY_KEYS}
    if isinstance(value, list):
        return [without_parsed(v) for v in value]
    return value


def wait_for(
    http: httpx.Client, response_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> list[dict[str, Any]]:
    """GET the response until ``until`` holds; returns every body seen (each one is worth validating)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/responses/{response_id}")
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        if until(seen[-1]):
            return seen
        assert time.monotonic() < deadline, f"{response_id} still {seen[-1]['status']} after {timeout} s"
        time.sleep(0.05)


def until_terminal(body: dict[str, Any]) -> bool:
    return body["status"] in TERMINAL_STATUSES
