"""``make bench``'s storage section: chained creates at turns 1, 2, 10, 50 and 100 (the server's own time and the
DynamoDB requests a create makes), ``input_items`` pages of a 100- and a 10,000-item response, and the reads an
idle follower of a background stream costs per minute.

Latencies are measured through the local stack (``x-overhead-ms``: the server's own time, the upstream's
excluded). Requests are counted at the DynamoDB client (botocore's ``before-call`` hook) of the same storage
code run in this process against the stack's moto: ``load_context`` of the previous response and ``put`` of
the new one are what a chained ``store: true`` create asks of storage; the follower is the same ``replay`` the
streaming function runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from .bench import MODEL, Row, le, log, pct

__all__ = ["storage_rows"]

TURNS = (1, 2, 10, 50, 100)
CHAINS = 5


class _Counter:
    """DynamoDB calls made by one client."""

    def __init__(self, client: Any) -> None:
        self.calls = 0
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, **_: Any) -> None:
        self.calls += 1

    def during(self, action: Callable[[], Any]) -> int:
        before = self.calls
        action()
        return self.calls - before


def _environment(stack: str) -> dict[str, str]:
    health = httpx.get(stack.removesuffix("/v1") + "/_local/health").json()
    values = {"AWS_ENDPOINT_URL": health["aws_endpoint_url"], "TABLE_NAME": health["table_name"],
              "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
              "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true"}  # fmt: skip
    os.environ.update(values)
    return values


def _requests_of_a_create(previous: str) -> tuple[int, int]:
    """What a create chained on ``previous`` asks of storage (its load and its put), on a store with nothing
    cached (a cold function), then again on the same store (a warm one). The probes stay in the chain as forks,
    so nothing the stack keeps goes stale."""
    from engine.models.response import Response
    from engine.storage.responses import DynamoResponseStore

    store = DynamoResponseStore(os.environ["TABLE_NAME"], 30, os.environ.get("FILES_BUCKET", ""))
    counter = _Counter(store.table.client)
    context = store.load_context("default", previous)
    assert context is not None
    probe = Response(id=f"resp_bench{time.time_ns()}", created_at=int(time.time()), model=MODEL,
                     status="completed", output=[])  # fmt: skip
    message = {"id": f"msg_bench{time.time_ns()}", "type": "message", "role": "user",
               "content": [{"type": "input_text", "text": "probe"}]}  # fmt: skip
    store.put("default", probe, [message], context.ancestors)
    cold = counter.calls
    context = store.load_context("default", previous)  # again: this process kept the context
    assert context is not None
    probe.id = f"resp_bench{time.time_ns()}"
    store.put("default", probe, [{**message, "id": f"msg_bench{time.time_ns()}"}], context.ancestors)
    return cold, counter.calls - cold


def _chain_rows(http: httpx.Client, section: str) -> list[Row]:
    overhead: dict[int, list[float]] = {turn: [] for turn in TURNS}
    requests: dict[int, list[float]] = {turn: [] for turn in TURNS}
    warm: dict[int, list[float]] = {turn: [] for turn in TURNS}
    for _ in range(CHAINS):
        previous: str | None = None
        for turn in range(1, max(TURNS) + 1):
            # a fixed-size answer: the scripted model otherwise echoes the whole context, which grows every turn
            body: dict[str, Any] = {"model": MODEL, "input": f"REPLY answer {turn}", "store": True}
            if previous:
                body["previous_response_id"] = previous
            answer = http.post("/responses", json=body)
            answer.raise_for_status()
            if turn in TURNS:
                overhead[turn].append(float(answer.headers["x-overhead-ms"]))
                if previous is not None:
                    cold, hot = _requests_of_a_create(previous)
                    requests[turn].append(cold)
                    warm[turn].append(hot)
            previous = answer.json()["id"]
    rows = []
    first = pct(overhead[1], 0.5)
    for turn in TURNS:
        rows.append(Row(f"chained create at turn {turn}, server time (ms)", len(overhead[turn]),
                        pct(overhead[turn], 0.5), pct(overhead[turn], 0.99), section=section))  # fmt: skip
    last = pct(overhead[max(TURNS)], 0.5)
    # Turn 1 reads nothing (there is no previous response); every chained turn reads once (a warm process checks
    # that the context it kept still holds: one BatchGetItem). So the cost of a chain's length is turn 100 against
    # turn 2, and turn 1 shows what that one read adds.
    rows.append(Row(f"turn {max(TURNS)} / turn 2 (ratio)", CHAINS, last / pct(overhead[2], 0.5), goals=[le(1.25)],
                    section=section))  # fmt: skip
    rows.append(Row(f"turn {max(TURNS)} / turn 1 (ratio; turn 1 makes no read)", CHAINS, last / first,
                    section=section))  # fmt: skip
    for turn in TURNS[1:]:
        for label, counts in (("cold", requests[turn]), ("warm", warm[turn])):
            rows.append(Row(f"DynamoDB requests of a create at turn {turn} (load + put), {label} process",
                            len(counts), pct(counts, 0.5), section=section))  # fmt: skip
    return rows


def _page_rows(http: httpx.Client, section: str) -> list[Row]:
    """Both responses are made first, then their pages timed interleaved: moto's Query reads its whole table, so
    both must see the same table."""
    cursors: dict[int, tuple[str, str]] = {}
    for size in (100, 10_000):
        items = [{"role": "user", "content": f"item {n}"} for n in range(size)]
        created = http.post("/responses", json={"model": MODEL, "input": items, "store": True}, timeout=600)
        created.raise_for_status()
        response_id = created.json()["id"]
        listed = http.get(f"/responses/{response_id}/input_items", params={"limit": 100, "order": "desc"}).json()
        cursors[size] = (response_id, listed["data"][-1]["id"])  # a cursor 100 items from the end
    timings: dict[int, list[float]] = {100: [], 10_000: []}
    for _ in range(30):
        for size, (response_id, after) in cursors.items():
            started = time.perf_counter()
            page = http.get(f"/responses/{response_id}/input_items", params={"limit": 20, "after": after})
            page.raise_for_status()
            timings[size].append((time.perf_counter() - started) * 1000)
    rows = [
        Row(
            f"input_items page of 20 after a cursor, {size:,} items (ms)",
            len(values),
            pct(values, 0.5),
            pct(values, 0.99),
            section=section,
        )  # fmt: skip
        for size, values in timings.items()
    ]
    small, large = rows[0].p50, rows[1].p50
    ratio = large / small if small and large else None
    rows.append(Row("10,000 / 100 items (ratio)", 30, ratio, goals=[le(1.5)], section=section))
    return rows


def _follower_rows(http: httpx.Client, section: str, seconds: float) -> list[Row]:
    from engine.responses.background import replay
    from engine.settings import get_settings
    from engine.storage import get_store

    get_settings.cache_clear()
    get_store.cache_clear()
    store: Any = get_store()
    counter = _Counter(store.table.client)
    response_id = http.post("/responses", json={"model": MODEL, "input": "HANG", "background": True}).json()["id"]
    deadline = time.monotonic() + 10
    while http.get(f"/responses/{response_id}").json()["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)

    async def follow() -> None:
        async def drain() -> None:
            async for _ in replay("default", response_id):
                pass

        try:
            await asyncio.wait_for(drain(), timeout=seconds)
        except TimeoutError:
            pass

    counter.calls = 0
    asyncio.run(follow())
    per_minute = counter.calls * 60 / seconds
    http.post(f"/responses/{response_id}/cancel")
    settings = get_settings()
    return [
        Row(
            f"idle follower of a background stream, {seconds:.0f} s (DynamoDB reads/min)",
            counter.calls,
            per_minute,
            goals=[le(120)],
            section=section,
        ),  # fmt: skip
        Row(
            f"same, polling every {settings.background_poll_seconds * 1000:.0f} ms without back-off (reads/min)",
            None,
            60 / settings.background_poll_seconds,
            section=section,
        ),  # fmt: skip
    ]


def storage_rows(stack: str, follower_seconds: float = 20.0) -> list[Row]:
    """The storage section's rows (see the module docstring)."""
    section = "storage: chains, pages, followers (moto; requests counted at the client)"
    log(section)
    _environment(stack)
    with httpx.Client(base_url=stack, timeout=120) as http:
        rows = _chain_rows(http, section)
        rows += _page_rows(http, section)
        rows += _follower_rows(http, section, follower_seconds)
    return rows
