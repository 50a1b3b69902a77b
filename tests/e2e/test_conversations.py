"""Conversations: CRUD, items (cursor pages), and ``conversation`` on create (its items are the context, and the
turn's input and output join it)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import UpstreamLog
from tests.e2e.test_auth import KEY_A, KEY_B, Stack, _start


@pytest.fixture(scope="module")
def auth_stack(upstream_url: str) -> Iterator[Stack]:
    """A stack with two tenants' keys (like test_auth's)."""
    yield from _start(upstream_url, {"API_KEYS": f"{KEY_A}:team-a,{KEY_B}:team-b", "UPSTREAM_TIMEOUT_SECONDS": "2"})


def _texts(items: Sequence[Any]) -> list[str]:
    return [item.model_dump()["content"][0]["text"] for item in items]


def _ids(items: Sequence[Any]) -> list[str]:
    return [str(item.id) for item in items]


def test_create_retrieve_update_delete(client: openai.OpenAI, http: httpx.Client):
    conv = client.conversations.create(
        metadata={"topic": "demo"}, items=[{"type": "message", "role": "user", "content": "hello"}]
    )
    assert conv.id.startswith("conv_") and conv.object == "conversation"
    assert conv.metadata == {"topic": "demo"} and isinstance(conv.created_at, int)
    assert client.conversations.retrieve(conv.id).model_dump() == conv.model_dump()
    updated = client.conversations.update(conv.id, metadata={"topic": "renamed"})
    assert updated.metadata == {"topic": "renamed"} and updated.created_at == conv.created_at
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "renamed"}
    items = client.conversations.items.list(conv.id)
    assert _texts(items.data) == ["hello"] and _ids(items.data)[0].startswith("msg_")

    deleted = http.delete(f"/conversations/{conv.id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": conv.id, "object": "conversation.deleted", "deleted": True}
    for call in (
        lambda: client.conversations.retrieve(conv.id),
        lambda: client.conversations.delete(conv.id),
        lambda: client.conversations.update(conv.id, metadata={}),
        lambda: client.conversations.items.list(conv.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body == {
            "message": f"Conversation with id '{conv.id}' not found.",
            "type": "invalid_request_error",
            "param": "conversation_id",
            "code": None,
        }


def test_empty_conversation_and_sdk_delete(client: openai.OpenAI):
    conv = client.conversations.create()
    assert conv.metadata == {}
    assert client.conversations.items.list(conv.id).data == []
    deleted = client.conversations.delete(conv.id)
    assert deleted.id == conv.id and deleted.deleted is True and deleted.object == "conversation.deleted"


def test_validation(client: openai.OpenAI, http: httpx.Client):
    too_many = [{"type": "message", "role": "user", "content": str(n)} for n in range(21)]
    bad = http.post("/conversations", json={"items": too_many})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "items"
    no_metadata = http.post(f"/conversations/{client.conversations.create().id}", json={})
    assert no_metadata.status_code == 400 and no_metadata.json()["error"]["param"] == "metadata"
    conv = client.conversations.create()
    for query, param in (("limit=0", "limit"), ("limit=101", "limit"), ("order=up", "order"), ("after=x", "after")):
        response = http.get(f"/conversations/{conv.id}/items?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["param"] == param


def test_items_add_retrieve_delete_and_pages(client: openai.OpenAI):
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "item 0"}])
    added = client.conversations.items.create(
        conv.id, items=[{"type": "message", "role": "user", "content": f"item {n}"} for n in range(1, 7)]
    )
    assert added.object == "list" and _texts(added.data) == [f"item {n}" for n in range(1, 7)]
    assert added.first_id == added.data[0].id and added.last_id == added.data[-1].id and added.has_more is False

    asc = list(client.conversations.items.list(conv.id, order="asc", limit=3))  # auto-paginates with after
    assert _texts(asc) == [f"item {n}" for n in range(7)]
    ids = _ids(asc)
    desc = client.conversations.items.list(conv.id, limit=2)
    assert _ids(desc.data) == [ids[6], ids[5]] and desc.has_more is True
    assert _ids(list(client.conversations.items.list(conv.id))) == ids[::-1]
    page = client.conversations.items.list(conv.id, order="asc", limit=3, after=ids[2])
    assert _ids(page.data) == ids[3:6] and page.has_more is True
    back = client.conversations.items.list(conv.id, order="desc", limit=10, after=ids[2])
    assert _ids(back.data) == [ids[1], ids[0]] and back.has_more is False
    assert getattr(back, "first_id") == ids[1] and getattr(back, "last_id") == ids[0]  # noqa: B009 (not typed)

    one = client.conversations.items.retrieve(ids[3], conversation_id=conv.id)
    assert one.id == ids[3] and _texts([one]) == ["item 3"]
    after_delete = client.conversations.items.delete(ids[3], conversation_id=conv.id)
    assert after_delete.id == conv.id and after_delete.object == "conversation"
    remaining = _ids(list(client.conversations.items.list(conv.id, order="asc", limit=100)))
    assert remaining == ids[:3] + ids[4:]
    with pytest.raises(openai.NotFoundError) as caught:
        client.conversations.items.retrieve(ids[3], conversation_id=conv.id)
    assert caught.value.body["param"] == "item_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(ids[3], conversation_id=conv.id)


def test_responses_in_a_conversation(client: openai.OpenAI, upstream: UpstreamLog):
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "REPLY seed"}])
    first = client.responses.create(model="m", input="REPLY one", conversation=conv.id)
    assert first.conversation is not None and first.conversation.id == conv.id
    assert client.responses.retrieve(first.id).conversation.id == conv.id  # type: ignore[union-attr]
    assert upstream.last_messages() == [
        {"role": "user", "content": "REPLY seed"},
        {"role": "user", "content": "REPLY one"},
    ]
    second = client.responses.create(model="m", input="two", conversation={"id": conv.id})
    assert second.conversation is not None and second.conversation.id == conv.id
    assert upstream.last_messages() == [
        {"role": "user", "content": "REPLY seed"},
        {"role": "user", "content": "REPLY one"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "two"},
    ]
    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [i.type for i in items] == ["message"] * 5
    assert [i.model_dump()["role"] for i in items] == ["user", "user", "assistant", "user", "assistant"]
    assert items[2].id == first.output[0].id and items[4].id == second.output[0].id
    assert _texts(items)[4] == second.output_text
    # the response's input items are the turn's own input, not the conversation's
    assert _texts(client.responses.input_items.list(second.id).data) == ["two"]


def test_streamed_response_joins_the_conversation(client: openai.OpenAI):
    conv = client.conversations.create()
    with client.responses.stream(model="m", input="REPLY streamed", conversation=conv.id) as stream:
        final = stream.get_final_response()
    assert final.conversation is not None and final.conversation.id == conv.id
    assert _texts(list(client.conversations.items.list(conv.id, order="asc"))) == ["REPLY streamed", "streamed"]


def test_failed_response_does_not_join(client: openai.OpenAI):
    conv = client.conversations.create()
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="m", input="FAIL 500", conversation=conv.id)
    assert client.responses.retrieve(caught.value.response.headers["x-response-id"]).status == "failed"
    assert client.conversations.items.list(conv.id).data == []


def test_conversation_errors(client: openai.OpenAI):
    conv = client.conversations.create()
    first = client.responses.create(model="m", input="x")
    with pytest.raises(openai.BadRequestError) as both:
        client.responses.create(model="m", input="x", conversation=conv.id, previous_response_id=first.id)
    assert both.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="m", input="x", conversation="conv_doesnotexist")
    assert unknown.value.param == "conversation"
    assert unknown.value.body["message"] == "Conversation with id 'conv_doesnotexist' not found."  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as unstored:
        client.responses.create(model="m", input="x", conversation=conv.id, store=False)
    assert unstored.value.param == "store"
    assert client.conversations.items.list(conv.id).data == []


def _conversation_rows(stack: Stack, conversation_id: str) -> list[dict[str, Any]]:
    ddb, rows, kwargs = stack.ddb(), [], {"TableName": stack.table_name}
    while True:
        page = ddb.scan(**kwargs)
        rows += [r for r in page["Items"] if r["pk"]["S"] == f"CONV#{conversation_id}"]
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_tenants_cannot_see_each_others_conversations(auth_stack: Stack):
    a, b = auth_stack.client(KEY_A), auth_stack.client(KEY_B)
    conv = a.conversations.create(items=[{"type": "message", "role": "user", "content": "secret of team a"}])
    item_id = _ids(a.conversations.items.list(conv.id).data)[0]
    for call in (
        lambda: b.conversations.retrieve(conv.id),
        lambda: b.conversations.update(conv.id, metadata={"x": "y"}),
        lambda: b.conversations.delete(conv.id),
        lambda: b.conversations.items.list(conv.id),
        lambda: b.conversations.items.create(conv.id, items=[{"type": "message", "role": "user", "content": "x"}]),
        lambda: b.conversations.items.retrieve(item_id, conversation_id=conv.id),
        lambda: b.conversations.items.delete(item_id, conversation_id=conv.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["param"] == "conversation_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as on_create:
        b.responses.create(model="m", input="x", conversation=conv.id)
    assert on_create.value.param == "conversation"
    # B's attempts changed nothing
    assert a.conversations.retrieve(conv.id).metadata == {}
    assert _texts(a.conversations.items.list(conv.id).data) == ["secret of team a"]


def test_an_expired_conversation_is_gone(auth_stack: Stack):
    a = auth_stack.client(KEY_A)
    conv = a.conversations.create(items=[{"type": "message", "role": "user", "content": "old"}])
    a.responses.create(model="m", input="REPLY kept", conversation=conv.id)
    rows = _conversation_rows(auth_stack, conv.id)
    assert {r["sk"]["S"].split("#")[0] for r in rows} == {"META", "ITEM"} and len(rows) == 4
    assert all(int(r["expires_at"]["N"]) > time.time() for r in rows)
    ddb, past = auth_stack.ddb(), {"N": str(int(time.time()) - 10)}
    for row in rows:
        ddb.update_item(
            TableName=auth_stack.table_name,
            Key={"pk": row["pk"], "sk": row["sk"]},
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": past},
        )
    with pytest.raises(openai.NotFoundError):
        a.conversations.retrieve(conv.id)
    with pytest.raises(openai.NotFoundError):
        a.conversations.items.list(conv.id)
    with pytest.raises(openai.NotFoundError):
        a.responses.create(model="m", input="x", conversation=conv.id)


def test_delete_leaves_nothing_behind(auth_stack: Stack):
    a = auth_stack.client(KEY_A)
    conv = a.conversations.create(items=[{"type": "message", "role": "user", "content": "x"}])
    assert len(_conversation_rows(auth_stack, conv.id)) == 2
    a.conversations.delete(conv.id)
    assert _conversation_rows(auth_stack, conv.id) == []


def test_concurrent_appends_keep_every_item(client: openai.OpenAI):
    conv = client.conversations.create()

    def add(n: int) -> None:
        client.conversations.items.create(
            conv.id, items=[{"type": "message", "role": "user", "content": f"{n}.{k}"} for k in range(3)]
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(8)))
    texts = _texts(list(client.conversations.items.list(conv.id, order="asc", limit=100)))
    assert sorted(texts) == sorted(f"{n}.{k}" for n in range(8) for k in range(3))
    for n in range(8):  # each append's items stay together and in order
        start = texts.index(f"{n}.0")
        assert texts[start : start + 3] == [f"{n}.{k}" for k in range(3)]
