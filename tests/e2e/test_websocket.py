"""WebSocket mode through the openai SDK's ``client.responses.connect()`` against the local stack: the same events
as SSE, one response at a time per connection, connection-local state for ``store:false`` continuations, errors as
error events on an open socket."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from local.stack import stack_table
from tests.conftest import UpstreamLog

TERMINAL = {"response.completed", "response.failed", "response.incomplete"}


def _turn(conn: Any) -> list[Any]:
    """The events of one turn: up to its terminal event, or a request-level error (an error with a status)."""
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL or (event.type == "error" and getattr(event, "status", None) is not None):
            return events
    raise AssertionError("the connection closed before the turn ended")


def _create(conn: Any, **params: Any) -> list[Any]:
    conn.send({"type": "response.create", "model": "m", **params})
    return _turn(conn)


def _error(events: list[Any]) -> Any:
    assert events[-1].type == "error", [e.type for e in events]
    return events[-1]


def test_events_are_those_sse_carries(client: openai.OpenAI):
    # Given the same request over HTTP (SSE) and over the socket
    with client.responses.create(model="m", input="REASON x\nREPLY one two three", stream=True) as stream:
        over_sse = [event.type for event in stream]
    with client.responses.connect() as conn:
        events = _create(conn, input="REASON x\nREPLY one two three")
    # Then the same event sequence, numbered from 0 without gaps, ending in the completed response
    assert [e.type for e in events] == over_sse
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.status == "completed" and final.output_text == "one two three"
    assert events[0].response.id == final.id


def test_sequential_responses_on_one_connection(client: openai.OpenAI):
    with client.responses.connect() as conn:
        first = _create(conn, input="REPLY first", store=False)
        second = _create(conn, input="REPLY second", store=False)
    assert first[-1].response.output_text == "first"
    assert second[-1].response.output_text == "second"
    assert first[-1].response.id != second[-1].response.id
    assert second[0].sequence_number == 0


def test_store_false_continuation_on_the_same_connection(client: openai.OpenAI, upstream: UpstreamLog):
    with client.responses.connect() as conn:
        first = _create(conn, input="REPLY cobalt", store=False, instructions="be brief")
        rid = first[-1].response.id
        second = _create(conn, input="and now?", store=False, previous_response_id=rid)
        third = _create(conn, input="REPLY three", store=False, previous_response_id=second[-1].response.id)
    # The upstream saw the chain as over HTTP: earlier inputs and outputs, not earlier instructions
    assert third[-1].response.status == "completed"
    assert upstream.last_messages() == [
        {"role": "user", "content": "REPLY cobalt"},
        {"role": "assistant", "content": "cobalt"},
        {"role": "user", "content": "and now?"},
        {"role": "assistant", "content": "roles=user,assistant,user; last=and now?"},
        {"role": "user", "content": "REPLY three"},
    ]
    assert second[-1].response.previous_response_id == rid
    # Nothing of a store:false chain is retrievable over HTTP
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(rid)


def test_store_false_response_is_not_found_after_a_reconnect(client: openai.OpenAI):
    with client.responses.connect() as conn:
        rid = _create(conn, input="REPLY copper", store=False)[-1].response.id
    with client.responses.connect() as conn:
        error = _error(_create(conn, input="again", store=False, previous_response_id=rid))
        # The socket stays open: a fresh response works on it
        recovered = _create(conn, input="REPLY recovered", store=False)
    assert error.status == 400
    assert error.error.code == "previous_response_not_found"
    assert error.error.param == "previous_response_id"
    assert rid in error.error.message
    assert recovered[-1].response.output_text == "recovered"


def test_failed_continuation_evicts_the_cached_response(client: openai.OpenAI):
    with client.responses.connect() as conn:
        rid = _create(conn, input="REPLY ember", store=False)[-1].response.id
        orphan = [{"type": "function_call_output", "call_id": "call_missing", "output": "x"}]
        failed = _error(_create(conn, input=orphan, store=False, previous_response_id=rid))
        retry = _error(_create(conn, input="stale", store=False, previous_response_id=rid))
    assert failed.status == 400 and "call_missing" in failed.error.message
    assert retry.error.code == "previous_response_not_found"


def test_failed_response_evicts_and_reports_in_stream(client: openai.OpenAI):
    with client.responses.connect() as conn:
        rid = _create(conn, input="REPLY base", store=False)[-1].response.id
        events = _create(conn, input="FAIL 500", store=False, previous_response_id=rid)
        retry = _error(_create(conn, input="again", store=False, previous_response_id=rid))
    # An upstream failure mid-response: the nested error event, then response.failed, as numbered events
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2].sequence_number == events[-1].sequence_number - 1
    assert events[-2].error.code and events[-1].response.error is not None
    assert retry.error.code == "previous_response_not_found"


def test_stored_responses_continue_from_storage_on_any_connection(client: openai.OpenAI, upstream: UpstreamLog):
    with client.responses.connect() as conn:
        first = _create(conn, input="REPLY kept")[-1].response
    # A new connection (no cached state) and HTTP both continue it from the table
    with client.responses.connect() as conn:
        second = _create(conn, input="next", previous_response_id=first.id)[-1].response
    assert second.status == "completed"
    assert [m["content"] for m in upstream.last_messages()] == ["REPLY kept", "kept", "next"]
    third = client.responses.create(model="m", input="REPLY over http", previous_response_id=second.id)
    assert client.responses.retrieve(third.id).previous_response_id == second.id


def test_a_second_create_waits_for_the_first(client: openai.OpenAI):
    # Given two response.create messages sent back to back, the first one slow
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "m", "store": False, "input": "SLOW 30\nREPLY a b c d e"})
        conn.send({"type": "response.create", "model": "m", "store": False, "input": "REPLY second"})
        first, second = _turn(conn), _turn(conn)
    # Then they ran one after the other: every event of the first came before any of the second
    assert first[-1].response.output_text == "a b c d e"
    assert second[-1].response.output_text == "second"
    assert first[0].response.id != second[0].response.id
    assert all(e.response.id == first[0].response.id for e in first if hasattr(e, "response"))


def test_bad_messages_are_error_events_on_an_open_socket(stack: str):
    url = stack.replace("http://", "ws://") + "/responses"
    with ws_connect(url, additional_headers={"Authorization": "Bearer sk-local"}) as ws:
        answers = []
        for message in (
            "not json",
            json.dumps({"type": "session.update"}),
            json.dumps({"type": "response.create", "model": "m", "input": "x", "background": True}),
            json.dumps({"type": "response.create", "model": "m", "input": "x", "temperature": 9}),
            json.dumps({"type": "response.steer", "input": "x", "previous_response_id": "resp_1"}),
        ):
            ws.send(message)
            answers.append(json.loads(ws.recv(timeout=10)))
        # The socket still serves a good message afterwards
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "REPLY fine"}))
        while (event := json.loads(ws.recv(timeout=10)))["type"] != "response.completed":
            pass
    assert [a["type"] for a in answers] == ["error"] * 5
    assert all(a["status"] == 400 and isinstance(a["error"]["code"], str) for a in answers)
    assert [a["error"]["code"] for a in answers][:2] == ["invalid_json", "invalid_event_type"]
    assert [a["error"]["param"] for a in answers][2:] == ["background", "temperature", "type"]
    assert event["response"]["output"][0]["content"][0]["text"] == "fine"


def test_upgrade_on_a_path_without_websockets_is_a_clean_404(stack: str):
    root = stack.removesuffix("/v1")
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(root.replace("http://", "ws://") + "/v1/responses/resp_1", open_timeout=10)
    response = refused.value.response
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["type"] == "invalid_request_error"
    # A plain HTTP request is unaffected
    assert httpx.get(root + "/_local/health").status_code == 200


def test_connection_state_is_deleted_on_disconnect(client: openai.OpenAI, stack: str):
    ddb, table = stack_table(stack)

    def rows() -> list[dict[str, Any]]:
        pages = ddb.get_paginator("scan").paginate(TableName=table)
        return [r for page in pages for r in page["Items"] if r["pk"]["S"].startswith("CONN#")]

    before = {r["pk"]["S"] for r in rows()}
    with client.responses.connect() as conn:
        _create(conn, input="REPLY cached", store=False)
        # The connection's record (tenant, TTL) and its cached response's items (written just after the terminal
        # event), all with the TTL attribute
        deadline = time.monotonic() + 15
        while True:
            by_pk: dict[str, set[str]] = {}
            for r in rows():
                if r["pk"]["S"] not in before:
                    by_pk.setdefault(r["pk"]["S"], set()).add(r["sk"]["S"])
            # this connection's partition (an earlier test's connection may still be going away meanwhile)
            found = [pk for pk, sks in by_pk.items() if {"META", "ITEM#000000", "ITEM#000001"} <= sks]
            if found:
                break
            assert time.monotonic() < deadline, f"the cached response was not written: {by_pk}"
            time.sleep(0.05)
        (pk,) = found
        mine = [r for r in rows() if r["pk"]["S"] == pk]
        assert all(int(r["expires_at"]["N"]) > time.time() + 3600 for r in mine)
    deadline = time.monotonic() + 15
    while any(r["pk"]["S"] == pk for r in rows()):
        assert time.monotonic() < deadline, "the connection's rows were not deleted on $disconnect"
        time.sleep(0.05)


def test_generate_false_prepares_the_next_turn_without_a_model_call(client: openai.OpenAI, upstream: UpstreamLog):
    with client.responses.connect() as conn:
        # A warm-up: checked, cached, no model turn
        warm = _create(conn, input="REPLY context", instructions="be brief", store=False, generate=False)
        assert upstream.requests() == []
        turn = _create(conn, input="REPLY go", store=False, previous_response_id=warm[-1].response.id)
        bad = _error(_create(conn, input="x", generate="no"))
    assert [e.type for e in warm] == ["response.created", "response.in_progress", "response.completed"]
    assert warm[-1].response.output == [] and warm[-1].response.status == "completed"
    # The continuation's context starts with the warm-up's input
    assert upstream.last_messages() == [
        {"role": "user", "content": "REPLY context"},
        {"role": "user", "content": "REPLY go"},
    ]
    assert turn[-1].response.output_text == "go"
    assert bad.error.param == "generate"
