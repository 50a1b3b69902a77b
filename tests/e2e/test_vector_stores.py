"""Vector Stores through the official client: ingestion on the stack's Step Functions (moto), hybrid search with
filters and a score threshold, file batches, a PDF, failures with last_error, deletion of chunks, expiry and
tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.e2e.test_files import stack_s3

POLICY = (
    "Refunds are accepted within thirty days of purchase when the receipt is shown. "
    "Store credit is offered after thirty days."
)
SHIPPING = "Parcels ship from the Lisbon warehouse every weekday; international shipping takes ten days."
GARDEN = "Tomatoes need full sun, deep watering twice a week and a stake once they flower."


def make_pdf(text: str) -> bytes:
    """A one-page PDF whose page shows ``text`` (Helvetica, one line), with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def wait_files(client: openai.OpenAI, store_id: str, timeout: float = 30) -> list[Any]:
    """The store's files once none is in progress (ingestion is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        files = list(client.vector_stores.files.list(store_id))
        if all(f.status != "in_progress" for f in files):
            return files
        if time.monotonic() > deadline:
            raise AssertionError(f"still in progress: {files}")
        time.sleep(0.2)


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def test_store_ingests_and_searches_hybrid(client: openai.OpenAI) -> None:
    # Given three files, one of them a PDF
    policy = upload(client, "policy.md", f"# Returns\n\n{POLICY}".encode())
    shipping = upload(client, "shipping.pdf", make_pdf(SHIPPING))
    garden = upload(client, "garden.html", f"<html><body><script>x()</script><p>{GARDEN}</p></body></html>".encode())
    # When a store is created with them
    store = client.vector_stores.create(name="kb", file_ids=[policy, shipping])
    assert store.status in ("in_progress", "completed") and store.file_counts.total == 2
    client.vector_stores.files.create(store.id, file_id=garden, attributes={"topic": "garden", "year": 2024})
    files = wait_files(client, store.id)
    # Then every file is ingested asynchronously and counted
    assert sorted(f.status for f in files) == ["completed"] * 3
    retrieved = client.vector_stores.retrieve(store.id)
    assert retrieved.file_counts.completed == 3 and retrieved.status == "completed" and retrieved.usage_bytes > 0
    # And search finds the right chunk (keyword and vector agree), PDF text included
    hits = client.vector_stores.search(store.id, query="how long does international shipping take")
    assert hits.data[0].file_id == shipping and hits.data[0].filename == "shipping.pdf"
    assert "Lisbon warehouse" in hits.data[0].content[0].text
    assert 0 < hits.data[0].score <= 1
    top = client.vector_stores.search(store.id, query="refund receipt", max_num_results=1)
    assert [h.file_id for h in top.data] == [policy] and "thirty days" in top.data[0].content[0].text
    # And the HTML's script is not indexed
    assert "x()" not in client.vector_stores.search(store.id, query="tomatoes sun").data[0].content[0].text
    # And filters (comparison and compound) restrict the files
    only_garden = client.vector_stores.search(
        store.id, query="refund receipt", filters={"type": "eq", "key": "topic", "value": "garden"}
    )
    assert {h.file_id for h in only_garden.data} <= {garden}
    compound = client.vector_stores.search(
        store.id,
        query="tomatoes",
        filters={
            "type": "and",
            "filters": [{"type": "gte", "key": "year", "value": 2024}, {"type": "ne", "key": "topic", "value": "x"}],
        },
    )
    assert [h.file_id for h in compound.data] == [garden] and compound.data[0].attributes == {
        "topic": "garden",
        "year": 2024,
    }
    # And a score threshold drops weaker hits
    everything = client.vector_stores.search(store.id, query="thirty days shipping tomatoes", max_num_results=10)
    strict = client.vector_stores.search(
        store.id,
        query="thirty days shipping tomatoes",
        ranking_options={"score_threshold": everything.data[0].score},
    )
    assert len(strict.data) < len(everything.data) and all(h.score >= everything.data[0].score for h in strict.data)


def test_chunking_strategy_is_honoured_and_deletes_remove_chunks(client: openai.OpenAI, stack: str) -> None:
    # Given a long document chunked into 100-token windows with no overlap
    words = " ".join(f"word{n}" for n in range(600))
    doc = upload(client, "long.txt", words.encode())
    store = client.vector_stores.create(
        name="chunks",
        file_ids=[doc],
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}},
    )
    [ingested] = wait_files(client, store.id)
    assert ingested.status == "completed"
    assert ingested.chunking_strategy.static.max_chunk_size_tokens == 100
    # 600 words of 2 estimated tokens each ("word", "123"): 12 windows of 100 tokens (the default 800/400: 2)
    spread = " ".join(f"word{n}" for n in range(0, 600, 15))
    hits = client.vector_stores.search(store.id, query=spread, max_num_results=50)
    assert len(hits.data) >= 10 and all(len(h.content[0].text) < 800 for h in hits.data)
    s3 = stack_s3(stack)
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    segments = f"tenants/default/vector_stores/{store.id}/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=segments)["KeyCount"] == 1
    # When the file itself is deleted
    client.files.delete(doc)
    # Then its chunks are gone from the store and from search
    assert s3.list_objects_v2(Bucket=bucket, Prefix=segments)["KeyCount"] == 0
    assert list(client.vector_stores.files.list(store.id)) == []
    assert client.vector_stores.search(store.id, query="word10").data == []
    # And an overlap over half the chunk size is a 400
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(
            file_ids=[],
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60}},
        )


def test_failures_batches_updates_and_deletes(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="batch")
    good = upload(client, "a.json", b'{"answer": "forty two", "question": "life"}')
    binary = upload(client, "b.bin", bytes(range(256)))
    empty_pdf = upload(client, "c.pdf", b"%PDF-1.4 not really a pdf")
    # When a batch adds them
    batch = client.vector_stores.file_batches.create(store.id, file_ids=[good, binary, empty_pdf])
    assert batch.file_counts.total == 3
    files = {f.id: f for f in wait_files(client, store.id)}
    # Then the unreadable ones fail with last_error, the others complete
    assert files[good].status == "completed"
    assert files[binary].status == "failed" and files[binary].last_error.code == "unsupported_file"
    assert files[empty_pdf].status == "failed" and files[empty_pdf].last_error.code == "invalid_file"
    done = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert done.status == "completed" and (done.file_counts.completed, done.file_counts.failed) == (1, 2)
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="failed")
    assert {f.id for f in listed} == {binary, empty_pdf}
    # And attributes can be updated, and filter search at once
    client.vector_stores.files.update(file_id=good, vector_store_id=store.id, attributes={"lang": "en"})
    found = client.vector_stores.search(
        store.id, query="forty two", filters={"type": "in", "key": "lang", "value": ["en"]}
    )
    assert [h.file_id for h in found.data] == [good]
    # And removing a file from the store keeps the file
    assert client.vector_stores.files.delete(file_id=good, vector_store_id=store.id).deleted
    assert client.files.retrieve(good).id == good
    assert client.vector_stores.search(store.id, query="forty two").data == []
    # And update / list / delete of the store
    renamed = client.vector_stores.update(store.id, name="renamed", metadata={"k": "v"})
    assert renamed.name == "renamed" and renamed.metadata == {"k": "v"}
    assert store.id in [s.id for s in client.vector_stores.list(limit=100)]
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_unknown_ids_are_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_nope")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(file_ids=["file-nope"])
    store = client.vector_stores.create(name="x")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(store.id, file_id="file-nope")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search("vs_nope", query="x")
