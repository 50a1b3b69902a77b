"""The file_search tool through the official client: the model calls the offered search function, the server
searches the vector store, the output has a file_search_call and a message with file_citation annotations;
streamed with the spec's events; with chains, background runs and store:false; tenants isolated; an expired
store gone from search."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from local.stack import running_stack, stack_table
from tests.e2e.test_vector_stores import POLICY, SHIPPING, make_pdf, upload, wait_files

SEARCH = 'CALL file_search {"queries": ["refund receipt thirty days"]}'


@pytest.fixture(scope="module")
def store_id(stack: str) -> str:
    client = openai.OpenAI(base_url=stack, api_key="sk-local", max_retries=0)
    policy = upload(client, "policy.md", f"# Returns\n\n{POLICY}".encode())
    shipping = upload(client, "shipping.pdf", make_pdf(SHIPPING))
    store = client.vector_stores.create(name="tool", file_ids=[policy, shipping])
    assert {f.status for f in wait_files(client, store.id)} == {"completed"}
    return store.id


def _tool(store_id: str, **extra: Any) -> Any:
    return {"type": "file_search", "vector_store_ids": [store_id], **extra}


def test_search_call_results_and_citations(client: openai.OpenAI, store_id: str, upstream: Any) -> None:
    # When the model calls the search tool
    response = client.responses.create(
        model="scripted", input=SEARCH, tools=[_tool(store_id)], include=["file_search_call.results"]
    )
    # Then the output is the search call (queries, results) and an answer citing the file
    assert response.status == "completed"
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed"
    assert call.queries == ["refund receipt thirty days"]
    assert call.results and call.results[0].filename == "policy.md" and "thirty days" in (call.results[0].text or "")
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text" and "[1]" in text.text
    citation = text.annotations[0]
    assert citation.type == "file_citation" and citation.file_id == call.results[0].file_id
    assert citation.filename == "policy.md" and text.text[citation.index : citation.index + 3] == "[1]"
    # And the model was offered a search function and shown the numbered passages
    chats = [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    offered = [t["function"]["name"] for t in chats[0]["body"]["tools"]]
    assert offered == ["file_search"]
    tool_message = chats[-1]["body"]["messages"][-1]
    assert tool_message["role"] == "tool" and "[1] policy.md" in tool_message["content"]
    # And no x-ignored-tools any more
    raw = client.responses.with_raw_response.create(model="scripted", input="hello", tools=[_tool(store_id)])
    assert "x-ignored-tools" not in raw.headers


def test_results_only_with_include_and_max_num_results(client: openai.OpenAI, store_id: str) -> None:
    response = client.responses.create(model="scripted", input=SEARCH, tools=[_tool(store_id, max_num_results=1)])
    call = response.output[0]
    assert call.type == "file_search_call" and call.results is None and call.status == "completed"
    stored = client.responses.retrieve(response.id)
    assert stored.output[0].results is None  # type: ignore[union-attr]
    # max_num_results bounds what the model sees
    included = client.responses.create(
        model="scripted",
        input=SEARCH,
        tools=[_tool(store_id, max_num_results=1)],
        include=["file_search_call.results"],
    )
    assert len(included.output[0].results or []) == 1  # type: ignore[union-attr]


def test_filters_on_the_tool(client: openai.OpenAI, store_id: str) -> None:
    shipping_only = {"type": "eq", "key": "kind", "value": "nothing-has-this"}
    response = client.responses.create(
        model="scripted",
        input=SEARCH,
        tools=[_tool(store_id, filters=shipping_only)],
        include=["file_search_call.results"],
    )
    assert response.output[0].results == []  # type: ignore[union-attr]
    assert response.output[1].content[0].annotations == []  # type: ignore[union-attr,index]


def test_streamed_events(client: openai.OpenAI, store_id: str) -> None:
    with client.responses.stream(
        model="scripted", input=SEARCH, tools=[_tool(store_id)], include=["file_search_call.results"]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types: list[str] = [e.type for e in events]
    order = [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.completed",
    ]
    positions = [types.index(t) for t in order]
    assert positions == sorted(positions), types
    added = next(e for e in events if e.type == "response.output_text.annotation.added")
    assert added.annotation.type == "file_citation"  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output[1].content[0].annotations[0].file_id == added.annotation.file_id  # type: ignore[union-attr,index]


def test_chain_background_and_store_false(client: openai.OpenAI, store_id: str, upstream: Any) -> None:
    first = client.responses.create(model="scripted", input=SEARCH, tools=[_tool(store_id)])
    # a chained turn sees the earlier search call and its answer
    second = client.responses.create(
        model="scripted", input="and then?", previous_response_id=first.id, tools=[_tool(store_id)]
    )
    assert second.status == "completed"
    seen = upstream.last_messages()
    assert any(m.get("tool_calls") and m["tool_calls"][0]["function"]["name"] == "file_search" for m in seen)
    # background
    job = client.responses.create(
        model="scripted", input=SEARCH, tools=[_tool(store_id)], background=True, include=["file_search_call.results"]
    )
    deadline = time.monotonic() + 30
    while (job := client.responses.retrieve(job.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job.status == "completed" and job.output[0].type == "file_search_call"
    assert job.output[1].content[0].annotations  # type: ignore[union-attr,index]
    # store: false
    unstored = client.responses.create(model="scripted", input=SEARCH, tools=[_tool(store_id)], store=False)
    assert unstored.status == "completed" and unstored.output[1].content[0].annotations  # type: ignore[union-attr,index]


def test_bad_tool_and_unknown_store(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="scripted", input="x", tools=[_tool("vs_nope")])
    assert unknown.value.body["param"] == "tools[0].vector_store_ids"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="scripted", input="x", tools=[{"type": "file_search", "vector_store_ids": []}])


def test_expired_store_is_gone_from_search(client: openai.OpenAI, stack: str) -> None:
    doc = upload(client, "note.txt", b"The launch code is blue falcon.")
    store = client.vector_stores.create(file_ids=[doc], expires_after={"anchor": "last_active_at", "days": 1})
    wait_files(client, store.id)
    assert client.vector_stores.search(store.id, query="launch code").data
    # When the store was last active two days ago (moved back in the stack's own table)
    ddb, table = stack_table(stack)
    key = {"pk": {"S": f"VS#{store.id}"}, "sk": {"S": "META"}}
    row = ddb.get_item(TableName=table, Key=key)["Item"]
    doc_json = json.loads(row["doc"]["S"])
    doc_json["last_active_at"] -= 2 * 86_400
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET doc = :d",
        ExpressionAttributeValues={":d": {"S": json.dumps(doc_json)}},
    )
    # Then it reads as expired, and search and the tool treat it as gone
    assert client.vector_stores.retrieve(store.id).status == "expired"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search(store.id, query="launch code")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="scripted", input="x", tools=[_tool(store.id)])


@pytest.fixture(scope="module")
def tenants(upstream_url: str) -> Iterator[str]:
    env = {"API_KEYS": "sk-alice:alice,sk-bob:bob", "UPSTREAM_TIMEOUT_SECONDS": "2"}
    with running_stack(upstream_base_url=upstream_url, env=env) as base_url:
        yield base_url


def test_tenants_are_isolated(tenants: str) -> None:
    alice = openai.OpenAI(base_url=tenants, api_key="sk-alice", max_retries=0)
    bob = openai.OpenAI(base_url=tenants, api_key="sk-bob", max_retries=0)
    doc = upload(alice, "secret.md", b"Alice's secret recipe uses saffron.")
    store = alice.vector_stores.create(name="alice", file_ids=[doc])
    wait_files(alice, store.id)
    batch = alice.vector_stores.file_batches.create(store.id, file_ids=[doc])
    # Every path with Alice's ids answers Bob 404
    attempts = [
        lambda: bob.files.retrieve(doc),
        lambda: bob.files.content(doc),
        lambda: bob.files.delete(doc),
        lambda: bob.vector_stores.retrieve(store.id),
        lambda: bob.vector_stores.update(store.id, name="mine"),
        lambda: bob.vector_stores.delete(store.id),
        lambda: bob.vector_stores.search(store.id, query="saffron"),
        lambda: bob.vector_stores.files.list(store.id),
        lambda: bob.vector_stores.files.retrieve(file_id=doc, vector_store_id=store.id),
        lambda: bob.vector_stores.files.delete(file_id=doc, vector_store_id=store.id),
        lambda: bob.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id),
        lambda: bob.responses.create(model="scripted", input=SEARCH, tools=[_tool(store.id)]),
    ]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError):
            attempt()
    # Bob cannot add Alice's file to his own store either, and lists none of hers
    own = bob.vector_stores.create(name="bob")
    with pytest.raises(openai.NotFoundError):
        bob.vector_stores.files.create(own.id, file_id=doc)
    assert doc not in [f.id for f in bob.files.list()]
    assert store.id not in [s.id for s in bob.vector_stores.list()]
    # And Alice still has everything
    assert alice.vector_stores.search(store.id, query="saffron").data[0].file_id == doc
