"""Background runs on Step Functions (moto running the real ASL, the worker dispatched in process)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from local.mcp_servers import mcp_server
from local.sse import frames
from tests.conftest import UpstreamLog, wait_for_response

TERMINAL = {"completed", "failed", "incomplete", "cancelled"}
LONG = "REPLY " + " ".join(f"w{n}" for n in range(40))


def _done(client: openai.OpenAI, response_id: str) -> Any:
    return wait_for_response(client, response_id, lambda r: r.status in TERMINAL)


def test_background_is_queued_then_completes(client: openai.OpenAI):
    created = client.responses.create(model="m", input="REPLY done in the background", background=True)
    assert created.status in ("queued", "in_progress") and created.background is True
    assert created.output == []
    final = _done(client, created.id)
    assert final.status == "completed" and final.output_text == "done in the background"
    assert final.background is True and final.id == created.id
    assert final.usage is not None and final.usage.output_tokens > 0


def test_background_failure_is_stored_as_failed(client: openai.OpenAI):
    created = client.responses.create(model="m", input="FAIL 503", background=True)
    final = _done(client, created.id)
    assert final.status == "failed" and final.error is not None and final.error.code == "server_error"


def test_background_with_an_mcp_tool_loop_over_several_steps(client: openai.OpenAI):
    with mcp_server("streamable-http") as url:
        tool: Any = {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": "never"}
        created = client.responses.create(model="m", input='CALL add {"a": 20, "b": 22}', tools=[tool], background=True)
        final = _done(client, created.id)
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output[1].output == "42" and final.output_text == "tool results: 42"


def _in_flight(upstream: UpstreamLog) -> int:
    return int(httpx.get(f"{upstream.root}/_stats").json()["in_flight"])


def test_cancel_while_streaming_slowly_stops_the_upstream(client: openai.OpenAI, upstream: UpstreamLog):
    # The model's in-flight count is the whole model's: first let an earlier test's run finish talking to it.
    deadline = time.monotonic() + 20
    while _in_flight(upstream) and time.monotonic() < deadline:
        time.sleep(0.05)
    marker = f"cancel-{time.time_ns()}"

    def mine() -> int:
        chat = [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]
        return len([r for r in chat if marker in str(r["body"])])

    created = client.responses.create(model="m", input=f"SLOW 100\n{LONG} {marker}", background=True)
    wait_for_response(client, created.id, lambda r: r.status == "in_progress")
    deadline = time.monotonic() + 10
    while not mine() and time.monotonic() < deadline:  # the worker's model call has started
        time.sleep(0.05)
    time.sleep(0.3)  # some chunks are in flight
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled" and cancelled.id == created.id
    requests_then = mine()
    assert requests_then == 1
    deadline = time.monotonic() + 5
    while _in_flight(upstream) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _in_flight(upstream) == 0, "the upstream stream was not closed"
    time.sleep(1.0)  # longer than a worker step: nothing may overwrite the cancel or call the model again
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert mine() == requests_then


def test_cancel_semantics(client: openai.OpenAI):
    created = client.responses.create(model="m", input=f"SLOW 200\n{LONG}", background=True)
    first = client.responses.cancel(created.id)
    second = client.responses.cancel(created.id)
    assert first.status == second.status == "cancelled"
    finished = client.responses.create(model="m", input="REPLY quick", background=True)
    done = _done(client, finished.id)
    unchanged = client.responses.cancel(finished.id)
    assert unchanged.status == done.status == "completed" and unchanged.output_text == "quick"
    foreground = client.responses.create(model="m", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(foreground.id)
    assert caught.value.body["message"] == "Cannot cancel a synchronous response."  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_doesnotexist")


def test_background_without_store_can_be_polled_but_not_chained(client: openai.OpenAI, http: httpx.Client):
    created = client.responses.create(model="m", input="REPLY kept briefly", background=True, store=False)
    assert created.to_dict()["store"] is False and created.background is True
    final = _done(client, created.id)
    assert final.status == "completed" and final.output_text == "kept briefly" and final.to_dict()["store"] is False
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input="x", previous_response_id=created.id)
    assert caught.value.code == "previous_response_not_found"
    # its items are not stored for item_reference either
    reference = {"type": "item_reference", "id": final.output[0].id}
    refused = http.post("/responses", json={"model": "m", "input": [reference]})
    assert refused.status_code in (400, 404) and "not found" in refused.json()["error"]["message"]


def _raw_events(http: httpx.Client, method: str, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with http.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, response.read()
        for frame in frames(response.iter_lines()):
            if not frame.done:
                data = frame.json()
                assert data["type"] == frame.event
                events.append(data)
    return events


def test_background_stream_starts_queued_and_resumes_with_the_same_numbers(client: openai.OpenAI, http: httpx.Client):
    live = _raw_events(
        http, "POST", "/responses", json={"model": "m", "input": LONG, "background": True, "stream": True}
    )
    types = [e["type"] for e in live]
    assert types[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert live[0]["response"]["status"] == "queued"
    assert types[-1] == "response.completed"
    assert [e["sequence_number"] for e in live] == list(range(len(live)))
    response_id = live[0]["response"]["id"]
    for after in (0, 5, len(live) - 2):
        again = _raw_events(
            http, "GET", f"/responses/{response_id}", params={"stream": "true", "starting_after": after}
        )
        assert again == live[after + 1 :]
    # the SDK resumes by replaying from the start and filtering on its side
    with client.responses.stream(response_id=response_id, starting_after=3) as stream:
        resumed = [event.sequence_number for event in stream]
    assert resumed == list(range(4, len(live)))


def test_stream_resume_follows_a_running_response_live(client: openai.OpenAI, http: httpx.Client):
    created = client.responses.create(model="m", input=f"SLOW 20\n{LONG}", background=True)
    events = _raw_events(http, "GET", f"/responses/{created.id}", params={"stream": "true"})
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == LONG.removeprefix("REPLY ")


def test_resume_of_a_foreground_response_is_400(client: openai.OpenAI, http: httpx.Client):
    foreground = client.responses.create(model="m", input="hi")
    answer = http.get(f"/responses/{foreground.id}", params={"stream": "true"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "stream"
    assert http.get("/responses/resp_nope", params={"stream": "true"}).status_code == 404
    assert http.get(f"/responses/{foreground.id}", params={"stream": "maybe"}).status_code == 400


def test_cancel_race_each_response_ends_in_exactly_one_consistent_state(client: openai.OpenAI, http: httpx.Client):
    ids = [client.responses.create(model="m", input=f"SLOW 10\n{LONG}", background=True).id for _ in range(8)]
    rng = random.Random(7)

    def cancel_later(response_id: str, delay: float) -> None:
        time.sleep(delay)
        client.responses.cancel(response_id)

    threads = [threading.Thread(target=cancel_later, args=(rid, rng.uniform(0, 1.2))) for rid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for response_id in ids:
        final = _done(client, response_id)
        time.sleep(0.1)
        again = client.responses.retrieve(response_id)
        assert again.status == final.status in ("completed", "cancelled")
        events = _raw_events(http, "GET", f"/responses/{response_id}", params={"stream": "true"})
        terminal = [e for e in events if e["type"] in ("response.completed", "response.failed", "response.incomplete")]
        if final.status == "completed":
            assert final.output_text == LONG.removeprefix("REPLY ") and len(terminal) == 1
        else:
            assert terminal == [], "a cancelled response has no terminal event"
            # only settled items are ever committed: nothing half-written is stored
            assert all(getattr(item, "status", "completed") == "completed" for item in again.output)
