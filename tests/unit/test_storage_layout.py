"""The chain layout on moto: constant-cost contexts and pages, forks, deletes and old-layout responses, repeated
ids in pages, the tenant recheck of item lookups, and items of any size through the S3 bucket."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic_core import to_json

from engine.errors import PreviousResponseNotFoundError
from engine.ids import new_id
from engine.models.items import ResponseOutputMessage, ResponseOutputText
from engine.models.response import Response
from engine.storage.codec import encode_row
from engine.storage.conversations import DynamoConversationStore
from engine.storage.responses import DynamoResponseStore
from local.aws import create_buckets, create_table
from local.template import load_template

TABLE = "responses-layout"
BUCKET = "items-layout"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        template = load_template()
        create_table(template.table_properties, TABLE)
        assert create_buckets(template, BUCKET) == [BUCKET]
        yield


@pytest.fixture
def store(aws: None) -> DynamoResponseStore:
    return DynamoResponseStore(TABLE, retention_days=30, bucket=BUCKET)


class Requests:
    """DynamoDB requests a client makes (counted by botocore's event hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def during(self, action: Any) -> list[str]:
        self.calls.clear()
        action()
        return list(self.calls)


def _response(text: str, created_at: int | None = None) -> Response:
    message = ResponseOutputMessage(id=new_id("msg"), status="completed", content=[ResponseOutputText(text=text)])
    return Response(id=new_id("resp"), created_at=created_at or int(time.time()), model="m", status="completed",
                    output=[message])  # fmt: skip


def _message(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("msg"), "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}  # fmt: skip


def _texts(items: list[dict[str, Any]]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


def _chain(store: DynamoResponseStore, turns: int, tenant: str = "t") -> list[Response]:
    chain: list[Response] = []
    ancestors: list[str] = []
    for n in range(turns):
        response = _response(f"a{n}")
        store.put(tenant, response, [_message(f"q{n}")], ancestors)
        chain.append(response)
        ancestors = [*ancestors, response.id]
    return chain


def _scan() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


def _objects() -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


# --- chains ------------------------------------------------------------------------------------------------------


def test_a_context_costs_the_same_requests_at_any_chain_length(store: DynamoResponseStore):
    short, long = _chain(store, 3), _chain(store, 60)
    fresh = DynamoResponseStore(TABLE, retention_days=30, bucket=BUCKET)  # nothing cached
    counted = Requests(fresh.table.client)
    calls_short = counted.during(lambda: fresh.load_context("t", short[-1].id))
    calls_long = counted.during(lambda: fresh.load_context("t", long[-1].id))
    assert calls_short == calls_long == ["GetItem", "Query"]
    context = fresh.load_context("t", long[-1].id)
    assert context is not None and context.ancestors == [r.id for r in long]
    assert _texts(context.items) == [t for n in range(60) for t in (f"q{n}", f"a{n}")]
    # storing the next turn: one batch write (the parent's place in the chain is known from the load)
    nxt = _response("next")
    assert counted.during(lambda: fresh.put("t", nxt, [_message("q")], context.ancestors)) == ["BatchWriteItem"]
    # a warm process kept both contexts: the record and the chain's delete count are all it reads
    for response_id, length in ((long[-1].id, 120), (nxt.id, 122)):
        calls = counted.during(lambda rid=response_id: fresh.load_context("t", rid))
        assert calls == ["BatchGetItem"]
        again = fresh.load_context("t", response_id)
        assert again is not None and len(again.items) == length
    assert again is not None and _texts(again.items)[-2:] == ["q", "next"]
    assert again.ancestors == [*context.ancestors, nxt.id]
    # a delete anywhere in the chain (by another process) sends the next load back to the table
    other = DynamoResponseStore(TABLE, retention_days=30, bucket=BUCKET)
    assert other.delete("t", long[5].id)
    with pytest.raises(PreviousResponseNotFoundError):
        fresh.load_context("t", nxt.id)


def test_forks_deletes_and_expiry_behave_as_before(store: DynamoResponseStore, monkeypatch: pytest.MonkeyPatch):
    a, b, c = _chain(store, 3)
    fork = _response("fork")
    store.put("t", fork, [_message("qf")], [a.id, b.id])
    sibling = _response("sibling")  # another child of a, at b's depth
    store.put("t", sibling, [_message("qs")], [a.id])
    context = store.load_context("t", fork.id)
    assert context is not None and _texts(context.items) == ["q0", "a0", "q1", "a1", "qf", "fork"]
    context = store.load_context("t", c.id)
    assert context is not None and _texts(context.items) == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert store.load_context("other", c.id) is None
    assert store.delete("t", b.id)
    for descendant in (c, fork):
        with pytest.raises(PreviousResponseNotFoundError) as caught:
            store.load_context("t", descendant.id)
        assert b.id in caught.value.message
    context = store.load_context("t", sibling.id)
    assert context is not None and _texts(context.items) == ["q0", "a0", "qs", "sibling"]
    later = time.time() + 31 * 86_400
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.load_context("t", sibling.id) is None


def _rows_of(response_id: str) -> list[dict[str, Any]]:
    """The record and the head row of a response, as stored."""
    return [r for r in _scan() if r["sk"]["S"] == "META" and r["pk"]["S"] == f"RESP#{response_id}"
            or r["sk"]["S"].endswith(f"#{response_id}#")]  # fmt: skip


def test_no_row_grows_with_the_chain(store: DynamoResponseStore):
    """A record names its parent, not its whole chain: what a turn writes, and what a warm load reads, is the
    same size at turn 2 and turn 80."""
    chain = _chain(store, 80)
    sizes = {n: sorted(len(to_json(row)) for row in _rows_of(chain[n].id)) for n in (1, 79)}
    assert len(sizes[1]) == 2 and all(abs(a - b) <= 4 for a, b in zip(sizes[1], sizes[79], strict=True)), sizes
    read: list[int] = []
    store.table.client.meta.events.register(
        "after-call.dynamodb.BatchGetItem", lambda parsed, **_: read.append(len(to_json(parsed["Responses"])))
    )
    for n in (1, 79):  # warm (this process stored them): the small attributes that say the kept context holds
        assert store.load_context("t", chain[n].id) is not None
    assert len(read) == 2 and abs(read[0] - read[1]) <= 4, read


def test_records_that_list_their_ancestors_still_load(store: DynamoResponseStore):
    """Records written by this layout's first version listed the chain (``ancestors``) and head rows had no
    ``parent``: their contexts load, and new turns chain on them."""
    chain = _chain(store, 4)
    client = boto3.client("dynamodb")
    for n, response in enumerate(chain):
        for row in _rows_of(response.id):
            row.pop("parent", None)
            if row["sk"]["S"] == "META":
                if n:
                    row["ancestors"] = {"L": [{"S": r.id} for r in chain[:n]]}
            client.put_item(TableName=TABLE, Item=row)
    fresh = DynamoResponseStore(TABLE, retention_days=30, bucket=BUCKET)
    context = fresh.load_context("t", chain[-1].id)
    assert context is not None and context.ancestors == [r.id for r in chain]
    nxt = _response("a4")
    fresh.put("t", nxt, [_message("q4")], context.ancestors)
    again = DynamoResponseStore(TABLE, retention_days=30, bucket=BUCKET).load_context("t", nxt.id)
    assert again is not None and _texts(again.items) == [t for n in range(5) for t in (f"q{n}", f"a{n}")]
    assert again.ancestors == [*context.ancestors, nxt.id]


def _put_old_layout(tenant: str, response: Response, inputs: list[dict[str, Any]], ancestors: list[str]) -> None:
    """A response as the previous layout stored it: every row under RESP#{id}."""
    pk, expires = f"RESP#{response.id}", response.created_at + 30 * 86_400
    rows: list[dict[str, Any]] = []
    for prefix, items in (("IN", inputs), ("OUT", [i.model_dump() for i in response.output])):
        for n, item in enumerate(items):
            rows.append({"pk": pk, "sk": f"{prefix}#{n:06d}", "item_id": item["id"], "gsi2pk": f"{tenant}#{item['id']}",
                         "item": to_json(item).decode(), "expires_at": expires})  # fmt: skip
    rows.append({"pk": pk, "sk": "META", "tenant": tenant, "status": response.status,
                 "created_at": response.created_at, "expires_at": expires,
                 "response": response.model_dump_json(exclude={"output"}), "gsi1pk": f"TENANT#{tenant}",
                 "gsi1sk": response.id, "n_in": len(inputs), "n_out": len(response.output),
                 "ancestors": ancestors or None})  # fmt: skip
    client = boto3.client("dynamodb")
    for row in rows:
        client.put_item(TableName=TABLE, Item=encode_row(row))


def test_responses_of_the_old_layout_still_load_and_chain(store: DynamoResponseStore):
    old1, old2 = _response("o1"), _response("o2")
    _put_old_layout("t", old1, [_message("p1")], [])
    _put_old_layout("t", old2, [_message("p2", "msg_shared")], [old1.id])
    assert store.get("t", old2.id) == old2
    page = store.list_input_items("t", old2.id, limit=5, order="asc", after=None)
    assert page is not None and _texts(page.data) == ["p2"]
    assert store.find_item("t", "msg_shared") is not None and store.find_item("u", "msg_shared") is None
    context = store.load_context("t", old2.id)
    assert context is not None and _texts(context.items) == ["p1", "o1", "p2", "o2"]
    new1 = _response("n1")
    store.put("t", new1, [_message("q1")], context.ancestors)
    new2 = _response("n2")
    store.put("t", new2, [_message("q2")], [*context.ancestors, new1.id])
    context = store.load_context("t", new2.id)
    assert context is not None and _texts(context.items) == ["p1", "o1", "p2", "o2", "q1", "n1", "q2", "n2"]
    assert context.ancestors == [old1.id, old2.id, new1.id, new2.id]
    assert store.delete("t", old1.id)
    with pytest.raises(PreviousResponseNotFoundError):
        store.load_context("t", new2.id)
    assert [r for r in _scan() if old1.id in r["pk"]["S"] + r["sk"]["S"]] == []


# --- pages -------------------------------------------------------------------------------------------------------


def _pages(store: DynamoResponseStore, response_id: str, order: Any, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(100):
        page = store.list_input_items("t", response_id, limit=limit, order=order, after=after)
        assert page is not None
        seen += page.data
        if not page.has_more:
            return seen
        after = page.data[-1]["id"]
    raise AssertionError("the pages never ended")


def test_pages_with_repeated_ids_neither_lose_items_nor_loop(store: DynamoResponseStore):
    ids = ["msg_a", "msg_b", "msg_a", "msg_c", "msg_a", "msg_d", "msg_b", "msg_e", "msg_a", "msg_a", "msg_f"]
    items = [_message(f"t{n}", item_id) for n, item_id in enumerate(ids)]
    response = _response("r")
    store.put("t", response, items, [])
    for limit in (1, 2, 3, 4, 20):
        assert _texts(_pages(store, response.id, "asc", limit)) == [f"t{n}" for n in range(len(ids))]
        assert _texts(_pages(store, response.id, "desc", limit)) == [f"t{n}" for n in reversed(range(len(ids)))]


def test_a_page_costs_the_same_requests_whatever_the_size(store: DynamoResponseStore):
    small, large = _response("s"), _response("l")
    store.put("t", small, [_message(f"s{n}") for n in range(20)], [])
    many = [_message(f"l{n}") for n in range(600)]
    store.put("t", large, many, [])
    counted = Requests(store.table.client)
    small_page = store.list_input_items("t", small.id, limit=5, order="asc", after=None)
    assert small_page is not None
    calls_small = counted.during(
        lambda: store.list_input_items("t", small.id, limit=5, order="asc", after=small_page.data[-1]["id"])
    )
    page: Any = None

    def deep_page() -> None:
        nonlocal page
        page = store.list_input_items("t", large.id, limit=5, order="desc", after=many[450]["id"])

    calls_large = counted.during(deep_page)
    assert calls_small == calls_large == ["GetItem", "Query", "Query"]  # record, cursor (gsi2), page
    assert _texts(page.data) == [f"l{n}" for n in range(449, 444, -1)] and page.has_more


def test_find_item_rechecks_the_tenant(store: DynamoResponseStore):
    # "a" + "x#y" and "a#x" + "y" make the same index key: the row's own tenant decides
    mine = _response("r")
    store.put("a", mine, [_message("a's secret", "x#y")], [])
    assert store.find_item("a#x", "y") is None
    found = store.find_item("a", "x#y")
    assert found is not None and _texts([found]) == ["a's secret"]


# --- items of any size ---------------------------------------------------------------------------------------


def _noise(size: int) -> str:
    """Text gzip cannot shrink under DynamoDB's item limit."""
    return base64.b64encode(os.urandom(size * 3 // 4)).decode()


def test_large_items_go_to_the_bucket_and_come_back_whole(store: DynamoResponseStore):
    part = {"type": "input_image", "image_url": "data:image/png;base64," + _noise(1_500_000)}
    image = {"id": new_id("msg"), "type": "message", "role": "user", "content": [part]}
    output = {"id": new_id("fc"), "type": "function_call_output", "call_id": "call_1", "output": _noise(600_000)}
    first = _response("seen")
    store.put("t", first, [image, output], [])
    assert len(_objects()) == 2 and all(o.startswith(f"responses/{first.id}/") for o in _objects())
    page = store.list_input_items("t", first.id, limit=5, order="asc", after=None)
    assert page is not None and page.data == [image, output]
    assert store.find_item("t", output["id"]) == output
    second = _response("next")
    store.put("t", second, [_message("more")], [first.id])
    context = store.load_context("t", second.id)
    assert context is not None and context.items[:2] == [image, output]
    assert store.delete("t", second.id) and store.delete("t", first.id)
    assert _objects() == [] and [r for r in _scan() if first.id in r["pk"]["S"] + r["sk"]["S"]] == []


def test_background_jobs_events_and_outputs_of_any_size(store: DynamoResponseStore):
    response = _response("bg")
    response.status = "queued"
    response.output = []
    job = {"tenant": "t", "params": {"input": _noise(500_000)}}
    big_event = to_json({"type": "response.created", "blob": _noise(500_000)}).decode()
    store.create_background("t", response, [_message("q")], [], job, [(0, big_event)])
    assert store.job(response.id) == job
    assert store.events(response.id, -1, 1) == [(0, big_event)]
    assert store.start_background(response.id)
    large_output = {"id": new_id("fc"), "type": "function_call", "call_id": "c", "name": "f",
                    "arguments": to_json({"x": _noise(500_000)}).decode(), "status": "completed"}  # fmt: skip
    response.status = "completed"
    done = to_json({"type": "response.completed", "response": {"output": [large_output]}}).decode()
    assert store.commit_progress(response, n_out=1, new_output=[large_output], events=[(1, done)], next_seq=2, job=None)
    assert store.job(response.id) is None
    stored = store.get("t", response.id)
    assert stored is not None and stored.status == "completed" and stored.output[0].model_dump() == large_output
    assert store.events(response.id, 0, 2) == [(1, done)]
    child = _response("child")
    store.put("t", child, [_message("q2")], [response.id])
    context = store.load_context("t", child.id)
    assert context is not None and context.items[1] == large_output
    assert store.delete("t", child.id) and store.delete("t", response.id)
    assert _objects() == []


# --- conversations ---------------------------------------------------------------------------------------------


@pytest.fixture
def conversations(aws: None) -> DynamoConversationStore:
    return DynamoConversationStore(TABLE, retention_days=30, bucket=BUCKET)


def _set_expiry(pk: str, sk: str, when: int) -> None:
    boto3.client("dynamodb").update_item(
        TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, UpdateExpression="SET expires_at = :t",
        ExpressionAttributeValues={":t": {"N": str(when)}},
    )  # fmt: skip


def test_a_conversation_expires_whole(conversations: DynamoConversationStore):
    call = {"id": "fc_1", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    conversations.create("t", "conv_1", {}, [call])
    # an item row's own expiry (a TTL for cleaning up) never hides it while the conversation lives
    _set_expiry("CONV#conv_1", "ITEM#000000", int(time.time()) - 10)
    assert conversations.append("t", "conv_1", [{"id": "fco_1", "type": "function_call_output", "call_id": "c1",
                                                 "output": "ok"}])  # fmt: skip
    assert [i["id"] for i in conversations.items("t", "conv_1") or []] == ["fc_1", "fco_1"]
    # when a renewal would outlive the item rows' TTL, every row moves past the conversation's new expiry
    _set_expiry("CONV#conv_1", "ITEM#000000", 0)
    boto3.client("dynamodb").update_item(
        TableName=TABLE, Key={"pk": {"S": "CONV#conv_1"}, "sk": {"S": "META"}},
        UpdateExpression="SET items_expire_at = :t", ExpressionAttributeValues={":t": {"N": "1"}},
    )  # fmt: skip
    assert conversations.append("t", "conv_1", [_message("later")])
    rows = [r for r in _scan() if r["pk"]["S"] == "CONV#conv_1"]
    meta = next(r for r in rows if r["sk"]["S"] == "META")
    assert len(rows) == 4
    assert all(int(r["expires_at"]["N"]) >= int(meta["expires_at"]["N"]) for r in rows)
    # the conversation's own expiry takes every item with it
    _set_expiry("CONV#conv_1", "META", int(time.time()) - 10)
    assert conversations.items("t", "conv_1") is None
    assert conversations.list_items("t", "conv_1", limit=5, order="asc", after=None) is None


def test_conversation_pages_with_repeated_ids(conversations: DynamoConversationStore):
    conversations.create("t", "conv_2", {}, [_message("t0", "msg_a"), _message("t1", "msg_b")])
    for n, item_id in enumerate(["msg_a", "msg_c", "msg_a", "msg_b", "msg_d", "msg_a"], start=2):
        conversations.append("t", "conv_2", [_message(f"t{n}", item_id)])
    expected = [f"t{n}" for n in range(8)]
    for limit in (1, 2, 3, 10):
        for order, want in (("asc", expected), ("desc", expected[::-1])):
            seen: list[dict[str, Any]] = []
            after = None
            for _ in range(50):
                page = conversations.list_items("t", "conv_2", limit=limit, order=order, after=after)  # type: ignore[arg-type]
                assert page is not None
                seen += page.data
                if not page.has_more:
                    break
                after = page.data[-1]["id"]
            assert _texts(seen) == want


def test_large_conversation_items_are_renewed_and_deleted(conversations: DynamoConversationStore):
    big = {"id": "fco_big", "type": "function_call_output", "call_id": "c", "output": _noise(600_000)}
    conversations.create("t", "conv_3", {}, [big])
    assert _objects() == ["conversations/conv_3/000000"]
    before = boto3.client("s3").head_object(Bucket=BUCKET, Key="conversations/conv_3/000000")["LastModified"]
    time.sleep(1.1)
    assert conversations.append("t", "conv_3", [_message("x")])
    after = boto3.client("s3").head_object(Bucket=BUCKET, Key="conversations/conv_3/000000")["LastModified"]
    assert after > before  # rewritten: its lifecycle clock restarts with the conversation's expiry
    assert conversations.get_item("t", "conv_3", "fco_big") == big
    assert conversations.delete("t", "conv_3") and _objects() == []


def test_pages_follow_last_evaluated_key(store: DynamoResponseStore, conversations: DynamoConversationStore):
    # ten items of ~300 KB: DynamoDB (and moto) return about three per 1 MB query page
    big = [_message("x" * 300_000 + str(n)) for n in range(10)]
    response = _response("big")
    store.put("t", response, big, [])
    page = store.list_input_items("t", response.id, limit=20, order="asc", after=None)
    assert page is not None and len(page.data) == 10 and not page.has_more
    page = store.list_input_items("t", response.id, limit=5, order="desc", after=None)
    assert page is not None and [i["id"] for i in page.data] == [i["id"] for i in big[::-1][:5]] and page.has_more
    conversations.create("t", "conv_big", {}, big)
    listed = conversations.list_items("t", "conv_big", limit=20, order="asc", after=None)
    assert listed is not None and len(listed.data) == 10 and not listed.has_more


def test_tenant_names_are_refused_unless_safe(aws: None, capsys: pytest.CaptureFixture[str]):
    from engine.cli.keys import main
    from engine.storage.keys import DynamoKeyStore, KeyRecord

    keys = DynamoKeyStore(TABLE)
    for bad in ("a#x", "", "a b", "-a", "x" * 65, "CONV#1", "a|b"):
        with pytest.raises(ValueError):
            keys.add(KeyRecord("h" * 64, bad, "active", 0, "sk-…abcd"))
        with pytest.raises(SystemExit):
            main(["--table", TABLE, "create", "--tenant", bad])  # the CLI strips spaces around the name
    assert "invalid tenant name" in capsys.readouterr().err
    keys.add(KeyRecord("h" * 64, "team-a.prod_1", "active", 0, "sk-…abcd"))
    assert [r.tenant for r in keys.list()] == ["team-a.prod_1"]
