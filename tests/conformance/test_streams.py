"""Stream-specific contracts: generation-time errors, and background responses streamed live (POST stream=true)
and replayed (GET ?stream=true)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conformance.helpers import until_terminal, wait_for, without_parsed
from tests.conformance.sse import check_framing, collect, post_stream
from tests.conformance.validators import validate_event, validate_response


@pytest.mark.parametrize("directive", ["FAIL 500", "FAIL_MIDSTREAM"])
def test_generation_error_is_an_error_event_then_response_failed_and_is_stored(http: httpx.Client, directive: str):
    capture = post_stream(http, {"model": "m", "input": directive})
    check_framing(capture)
    for event in capture.data:
        validate_event(event)
    assert capture.types.count("error") == 1 and capture.types[-2:] == ["error", "response.failed"]
    error = capture.events[-2].data
    assert not error.get("error"), "a truthy top-level `error` makes openai's Stream raise APIError"
    assert isinstance(error["message"], str) and error["message"] and "code" in error and "param" in error
    failed = capture.terminal()
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": error["code"], "message": error["message"], "type": "server_error"}
    stored = http.get(f"/responses/{failed['id']}").json()
    validate_response(stored)
    assert stored["status"] == "failed" and stored["error"] == failed["error"]
    assert stored == failed


# --------------------------------------------------------------------------------------------------------------------
# Background

BACKGROUND = [
    pytest.param("REPLY " + " ".join(f"w{n}" for n in range(12)), "completed", id="text"),
    pytest.param("REASON tides\nREPLY high tide", "completed", id="reasoning"),
    pytest.param("FAIL 500", "failed", id="failed"),
    pytest.param("LENGTH\nREPLY cut short", "incomplete", id="incomplete"),
]


def _background(text: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "input": text, "background": True}
    if "LENGTH" in text:
        body["max_output_tokens"] = 16
    return body


@pytest.mark.parametrize(("text", "status"), BACKGROUND)
def test_background_bodies_validate_from_queued_to_terminal(http: httpx.Client, text: str, status: str):
    answer = http.post("/responses", json=_background(text))
    assert answer.status_code == 200, answer.text
    created = answer.json()
    validate_response(created)
    assert created["status"] in ("queued", "in_progress") and created["background"] is True
    seen = wait_for(http, created["id"], until_terminal)
    for body in seen:
        validate_response(body)
        assert (body["id"], body["created_at"], body["background"]) == (created["id"], created["created_at"], True)
    assert seen[-1]["status"] == status


@pytest.mark.parametrize(("text", "status"), BACKGROUND)
def test_background_stream_live_and_replayed(http: httpx.Client, text: str, status: str):
    live = collect(http, "POST", "/responses", json={**_background(text), "stream": True})
    check_framing(live)
    for event in live.data:
        validate_event(event)
    assert live.types[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert live.data[0]["response"]["status"] == "queued"
    final = live.terminal()
    assert final["status"] == status
    stored = http.get(f"/responses/{final['id']}").json()
    validate_response(stored)
    assert stored == final
    replay = collect(http, "GET", f"/responses/{final['id']}", params={"stream": "true"})
    check_framing(replay, replay=True)
    assert replay.data == live.data, "a replay carries the same events with the same sequence numbers"
    resumed = collect(http, "GET", f"/responses/{final['id']}", params={"stream": "true", "starting_after": 3})
    check_framing(resumed, replay=True)
    assert resumed.data == live.data[4:]


def test_background_through_the_sdk_stream_helper_and_resume(client: openai.OpenAI):
    with client.responses.stream(model="m", input="REPLY in the background", background=True) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events][:3] == ["response.created", "response.queued", "response.in_progress"]
    stored = client.responses.retrieve(final.id)
    assert stored.model_dump() == without_parsed(final.model_dump())
    # the SDK resumes with GET ?stream=true (no starting_after on the wire) and filters on its side
    with client.responses.stream(response_id=final.id, starting_after=2) as resumed:
        numbers = [event.sequence_number for event in resumed]
        again = resumed.get_final_response()
    assert numbers == list(range(3, len(events)))
    assert without_parsed(again.model_dump()) == stored.model_dump()


def test_background_failure_through_the_sdk_stream_helper(client: openai.OpenAI):
    with client.responses.stream(model="m", input="FAIL 500", background=True) as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match=r"^Didn't receive a `response.completed` event\.$"):
            stream.get_final_response()
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    terminal: Any = events[-1]
    assert client.responses.retrieve(terminal.response.id).model_dump() == terminal.response.model_dump()
