"""DynamoResponseStore on moto: round trips, retention (expired = absent), tenants, large items, delete."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from engine.errors import PayloadTooLargeError, PreviousResponseNotFoundError
from engine.models.items import ResponseOutputMessage, ResponseOutputText
from engine.models.response import Response
from engine.storage.responses import DynamoResponseStore
from tests.conftest import moto_table

TABLE = "responses-unit"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoResponseStore]:
    with moto_table(monkeypatch, TABLE):
        yield DynamoResponseStore(TABLE, retention_days=30)


def _response(text: str, created_at: int | None = None) -> Response:
    from engine.ids import new_id

    message = ResponseOutputMessage(id=new_id("msg"), status="completed", content=[ResponseOutputText(text=text)])
    return Response(id=new_id("resp"), created_at=created_at or int(time.time()), model="m", status="completed",
                    output=[message])  # fmt: skip


def _input(text: str) -> list[dict[str, Any]]:
    from engine.ids import new_id

    return [{"id": new_id("msg"), "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]


def _rows_of(response_id: str) -> list[dict[str, Any]]:
    """Every row of the table whose key names the response (whatever the layout)."""
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return [i for i in items if response_id in i["pk"]["S"] + i["sk"]["S"]]


def test_round_trip_and_chain_context(store: DynamoResponseStore):
    first = _response("one")
    store.put("t", first, _input("q1"), [])
    assert store.get("t", first.id) == first
    second = _response("two")
    store.put("t", second, _input("q2"), [first.id])
    context = store.load_context("t", second.id)
    assert context is not None and context.ancestors == [first.id, second.id]
    texts = [item["content"][0]["text"] for item in context.items]
    assert texts == ["q1", "one", "q2", "two"]


def test_other_tenant_sees_nothing(store: DynamoResponseStore):
    response = _response("mine")
    store.put("a", response, _input("q"), [])
    assert store.get("b", response.id) is None
    assert store.load_context("b", response.id) is None
    assert store.list_input_items("b", response.id, limit=5, order="asc", after=None) is None
    assert store.list_responses("b", limit=5, after=None, before=None).data == []
    assert store.delete("b", response.id) is False
    assert store.get("a", response.id) is not None


def test_expired_response_is_absent_on_every_read(store: DynamoResponseStore, monkeypatch: pytest.MonkeyPatch):
    old = _response("old", created_at=int(time.time()) - 31 * 86_400)
    store.put("t", old, _input("q"), [])
    child = _response("child")
    store.put("t", child, _input("q2"), [old.id])
    assert store.get("t", old.id) is None
    assert store.load_context("t", old.id) is None
    assert store.list_input_items("t", old.id, limit=5, order="asc", after=None) is None
    assert [r.id for r in store.list_responses("t", limit=5, after=None, before=None).data] == [child.id]
    with pytest.raises(PreviousResponseNotFoundError):
        store.load_context("t", child.id)  # its ancestor expired: the chain is gone with it
    # moving the clock past the child's expiry hides it too
    later = time.time() + 31 * 86_400
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.get("t", child.id) is None


def test_large_items_are_compressed_and_too_large_items_refused(store: DynamoResponseStore):
    big = _input("word " * 150_000)  # 750 KB of text: over the item limit raw, well under it gzipped
    response = _response("ok")
    store.put("t", response, big, [])
    page = store.list_input_items("t", response.id, limit=5, order="asc", after=None)
    assert page is not None and page.data == big
    random_text = base64.b64encode(os.urandom(400_000)).decode()  # 533 KB that gzip cannot shrink below 400 KB
    with pytest.raises(PayloadTooLargeError):
        store.check_items(_input(random_text))


def test_delete_removes_every_item(store: DynamoResponseStore):
    response = _response("x")
    store.put("t", response, _input("a") + _input("b"), [])
    assert _rows_of(response.id)
    assert store.delete("t", response.id) is True
    assert _rows_of(response.id) == []
    assert store.delete("t", response.id) is False


def test_list_pages_skip_expired_entries(store: DynamoResponseStore):
    now = int(time.time())
    live = []
    for n in range(6):
        expired = n % 2 == 0
        response = _response(f"r{n}", created_at=now - 40 * 86_400 if expired else now)
        store.put("t", response, _input("q"), [])
        if not expired:
            live.append(response.id)
    page = store.list_responses("t", limit=2, after=None, before=None)
    assert [r.id for r in page.data] == live[::-1][:2] and page.has_more
    rest = store.list_responses("t", limit=2, after=page.data[-1].id, before=None)
    assert [r.id for r in rest.data] == [live[0]] and not rest.has_more


def test_responses_with_many_items_are_stored_whole(store: DynamoResponseStore):
    # Over 100 items does not fit one transaction: items go first, the response record last.
    many = [item for n in range(150) for item in _input(f"m{n}")]
    response = _response("many")
    store.put("t", response, many, [])
    page = store.list_input_items("t", response.id, limit=100, order="asc", after=None)
    assert page is not None and len(page.data) == 100 and page.has_more
    rest = store.list_input_items("t", response.id, limit=100, order="asc", after=page.data[-1]["id"])
    assert rest is not None and [i["content"][0]["text"] for i in rest.data] == [f"m{n}" for n in range(100, 150)]
    context = store.load_context("t", response.id)
    assert context is not None and len(context.items) == 151


def test_a_response_is_invisible_until_all_its_items_are_written(store: DynamoResponseStore):
    # The record and its items go in one non-atomic batch: a reader (another process: the writer keeps what
    # it wrote) that sees the record before an item (simulated here by removing one) must not see a response
    # with missing output or context.
    response = _response("whole")
    store.put("t", response, _input("q"), [])
    ddb = boto3.client("dynamodb")
    (output,) = [row for row in _rows_of(response.id) if "OUT#" in row["sk"]["S"]]
    ddb.delete_item(TableName=TABLE, Key={"pk": output["pk"], "sk": output["sk"]})
    reader = DynamoResponseStore(TABLE, retention_days=30)
    assert reader.get("t", response.id) is None
    assert reader.load_context("t", response.id) is None
    assert reader.list_responses("t", limit=5, after=None, before=None).data == []


def test_a_background_response_without_store_is_kept_ten_minutes_and_never_chained(store: DynamoResponseStore):
    from engine.storage.responses import UNSTORED_SECONDS

    assert UNSTORED_SECONDS == 600
    for age, visible in ((0, True), (UNSTORED_SECONDS + 1, False)):
        response = _response("brief", created_at=int(time.time()) - age).model_copy(
            update={"store": False, "background": True, "status": "queued", "output": []}
        )
        items = _input("q")
        store.create_background("t", response, items, [], {"tenant": "t"}, [(0, "{}")])
        assert (store.progress(response.id) is not None) is visible
        assert (store.get("t", response.id) is not None) is visible
        assert store.load_context("t", response.id) is None
        assert store.find_item("t", items[0]["id"]) is None
    # a stored response of the same age is still there (retention is days)
    kept = _response("kept", created_at=int(time.time()) - UNSTORED_SECONDS - 1)
    store.put("t", kept, _input("q"), [])
    assert store.get("t", kept.id) is not None and store.load_context("t", kept.id) is not None


def test_a_queued_background_response_can_be_chained_from(store: DynamoResponseStore):
    """Its JOB row sits among its item rows; the context is its input (no output yet), not a crash."""
    response = _response("x").model_copy(update={"background": True, "status": "queued", "output": []})
    items = _input("q")
    store.create_background("t", response, items, [], {"tenant": "t"}, [(0, "{}")])
    context = store.load_context("t", response.id)
    assert context is not None and [item["id"] for item in context.items] == [items[0]["id"]]
