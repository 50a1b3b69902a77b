"""Retrieve, delete, input_items (cursor pages) and the response list (newest first)."""

from __future__ import annotations

import httpx
import openai
import pytest


def test_retrieve_returns_the_same_response(client: openai.OpenAI):
    created = client.responses.create(model="m", input="REPLY kept", metadata={"k": "v"})
    assert client.responses.retrieve(created.id).model_dump() == created.model_dump()


def test_delete_then_everything_is_404(client: openai.OpenAI, http: httpx.Client):
    created = client.responses.create(model="m", input="bye")
    deleted = http.delete(f"/responses/{created.id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": created.id, "object": "response", "deleted": True}
    for call in (
        lambda: client.responses.retrieve(created.id),
        lambda: client.responses.delete(created.id),
        lambda: client.responses.input_items.list(created.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body == {
            "message": f"Response with id '{created.id}' not found.",
            "type": "invalid_request_error",
            "param": "response_id",
            "code": None,
        }


def test_input_items_every_item_has_an_id_and_pages(client: openai.OpenAI):
    texts = [f"item {n}" for n in range(7)]
    created = client.responses.create(
        model="m", input=[{"role": "user", "content": t} for t in texts], instructions="not an item"
    )
    # SDK auto-pagination follows after=<last id> until has_more is false
    asc = [item for item in client.responses.input_items.list(created.id, order="asc", limit=3)]
    assert [i.model_dump()["content"][0]["text"] for i in asc] == texts
    assert all(i.id and i.id.startswith("msg_") for i in asc)
    desc = list(client.responses.input_items.list(created.id, limit=2))
    assert [i.id for i in desc] == [i.id for i in reversed(asc)]
    page = client.responses.input_items.list(created.id, order="asc", limit=3, after=asc[2].id)
    assert [i.id for i in page.data] == [i.id for i in asc[3:6]] and page.has_more is True
    last = client.responses.input_items.list(created.id, order="asc", limit=3, after=asc[5].id)
    assert [i.id for i in last.data] == [asc[6].id] and last.has_more is False
    assert getattr(last, "first_id") == getattr(last, "last_id") == asc[6].id  # noqa: B009 (not in the SDK type)


def test_input_items_of_a_chained_response_are_its_own_input(client: openai.OpenAI):
    first = client.responses.create(model="m", input="one")
    second = client.responses.create(model="m", input=[{"role": "user", "content": "two", "type": "message"}],
                                     previous_response_id=first.id)  # fmt: skip
    items = client.responses.input_items.list(second.id).data
    assert [i.model_dump()["content"][0]["text"] for i in items] == ["two"]


def test_input_items_query_validation(client: openai.OpenAI, http: httpx.Client):
    created = client.responses.create(model="m", input="x")
    for query, param in (("limit=0", "limit"), ("limit=101", "limit"), ("order=sideways", "order")):
        response = http.get(f"/responses/{created.id}/input_items?{query}")
        assert response.status_code == 400, query
        error = response.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    unknown_after = http.get(f"/responses/{created.id}/input_items?after=msg_nope")
    assert unknown_after.status_code == 400 and unknown_after.json()["error"]["param"] == "after"


def test_list_responses_newest_first_with_cursors(client: openai.OpenAI, http: httpx.Client):
    ids = [client.responses.create(model="m", input=f"REPLY list {n}").id for n in range(5)]
    client.responses.create(model="m", input="not stored", store=False)
    first = http.get("/responses", params={"limit": 2}).json()
    assert first["object"] == "list" and [r["id"] for r in first["data"]] == ids[::-1][:2]
    assert first["first_id"] == ids[4] and first["last_id"] == ids[3] and first["has_more"] is True
    second = http.get("/responses", params={"limit": 2, "after": first["last_id"]}).json()
    assert [r["id"] for r in second["data"]] == [ids[2], ids[1]]
    assert second["data"][0]["output"][0]["content"][0]["text"] == "list 2"
    newer = http.get("/responses", params={"limit": 2, "before": ids[1]}).json()
    assert [r["id"] for r in newer["data"]] == [ids[3], ids[2]]
    assert http.get("/responses", params={"limit": 0}).status_code == 400
    both = http.get("/responses", params={"after": ids[1], "before": ids[3]})
    assert both.status_code == 400 and both.json()["error"]["param"] == "before"


def test_unknown_route_is_an_openai_shaped_404(http: httpx.Client):
    response = http.get("/nothing/here")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
