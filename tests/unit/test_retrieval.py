"""file_search pieces without the stack: chunk windows, filters, rank fusion and its score threshold, citations,
parsing, and the S3 Vectors adapter on moto (put and delete; moto 5.2.5 has no QueryVectors)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import numpy as np
import pytest

from engine.errors import InvalidRequestError
from engine.models.files import ComparisonFilter, CompoundFilter, HybridSearch, RankingOptions
from engine.retrieval.chunking import _TOKEN, chunk_text, static_strategy
from engine.retrieval.embeddings import hashed_embedding
from engine.retrieval.parsing import UnsupportedFile, extract_text
from engine.retrieval.search import build_index, hybrid_search, matches
from engine.storage.vectors import S3VectorsStore, Segment
from engine.tools.file_search import citations, queries_of, result_text
from tests.conftest import moto_aws


def test_chunks_are_windows_with_overlap() -> None:
    text = " ".join(f"w{n}" for n in range(100))  # 100 estimated tokens (a run of up to 4 letters or digits)
    chunks = chunk_text(text, max_tokens=40, overlap=10)
    assert all(len(_TOKEN.findall(c)) <= 40 for c in chunks)
    # each window starts 30 tokens after the previous, so it repeats the previous window's last 10
    assert chunks[0].startswith("w0 ") and chunks[0].endswith("w39")
    assert chunks[1].startswith("w30 ") and chunks[1].endswith("w69")
    assert chunks[-1].endswith("w99") and len(chunks) == 3
    assert chunk_text("") == []
    assert chunk_text("one two", 800, 400) == ["one two"]


def test_static_strategy_defaults_and_overlap_limit() -> None:
    assert static_strategy(None)["static"] == {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}
    assert static_strategy({"type": "auto"})["static"]["max_chunk_size_tokens"] == 800
    with pytest.raises(InvalidRequestError):
        static_strategy({"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51}})


def test_filters_comparison_and_compound() -> None:
    attrs = {"team": "hr", "year": 2024, "draft": False}
    assert matches(ComparisonFilter(type="eq", key="team", value="hr"), attrs)
    assert not matches(ComparisonFilter(type="ne", key="team", value="hr"), attrs)
    assert matches(ComparisonFilter(type="gte", key="year", value=2024), attrs)
    assert not matches(ComparisonFilter(type="lt", key="year", value=2024), attrs)
    assert matches(ComparisonFilter(type="in", key="team", value=["hr", "it"]), attrs)
    assert matches(ComparisonFilter(type="nin", key="team", value=["it"]), attrs)
    assert not matches(ComparisonFilter(type="gt", key="team", value=3), attrs)  # mismatched types never match
    assert not matches(ComparisonFilter(type="eq", key="missing", value="x"), attrs)
    both = CompoundFilter(
        type="and",
        filters=[
            ComparisonFilter(type="eq", key="draft", value=False),
            CompoundFilter(
                type="or",
                filters=[
                    ComparisonFilter(type="eq", key="team", value="it"),
                    ComparisonFilter(type="gt", key="year", value=2020),
                ],
            ),
        ],
    )
    assert matches(both, attrs) and not matches(both, {**attrs, "draft": True})


def _index() -> tuple[object, np.ndarray]:
    texts = ["refunds within thirty days", "shipping from lisbon", "tomatoes need sun", "thirty tomatoes shipped"]
    vectors = np.asarray([hashed_embedding(t, 256) for t in texts], dtype=np.float32)
    index = build_index(
        "vs_1", [("file-a", Segment(texts[:2], vectors[:2])), ("file-b", Segment(texts[2:], vectors[2:]))]
    )
    return index, np.ones(index.size, dtype=bool)


def test_hybrid_fusion_threshold_filters_and_weights() -> None:
    index, mask = _index()
    query = "thirty tomatoes"
    hits = hybrid_search([(index, mask)], [query], [hashed_embedding(query, 256)], max_results=10)  # type: ignore[list-item]
    # the chunk matching both words is first in both rankings: the top fused score, normalised to 1
    assert hits[0].text == "thirty tomatoes shipped" and hits[0].score == pytest.approx(1.0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert "shipping from lisbon" not in [h.text for h in hits]  # matches neither ranking
    strict = hybrid_search(
        [(index, mask)],  # type: ignore[list-item]
        [query],
        [hashed_embedding(query, 256)],
        max_results=10,
        ranking=RankingOptions(score_threshold=0.99),
    )
    assert [h.text for h in strict] == ["thirty tomatoes shipped"]
    only_a = np.asarray([True, True, False, False])
    filtered = hybrid_search([(index, only_a)], [query], [hashed_embedding(query, 256)], max_results=10)  # type: ignore[list-item]
    assert {h.file_id for h in filtered} == {"file-a"}
    keyword_only = hybrid_search(
        [(index, mask)],  # type: ignore[list-item]
        ["lisbon"],
        [hashed_embedding("unrelated words entirely", 256)],
        max_results=1,
        ranking=RankingOptions(hybrid_search=HybridSearch(embedding_weight=0, text_weight=1)),
    )
    assert [h.text for h in keyword_only] == ["shipping from lisbon"]


def test_citations_and_result_text() -> None:
    sources = [{"file_id": "file-a", "filename": "a.md", "text": "alpha"}, {"file_id": "file-b", "filename": "b.pdf"}]
    text = "Alpha holds [1], and so does beta [2]; [9] names nothing."
    notes = citations(text, sources)
    assert [(n["file_id"], n["filename"]) for n in notes] == [("file-a", "a.md"), ("file-b", "b.pdf")]
    assert text[notes[0]["index"] :].startswith("[1]") and all(n["type"] == "file_citation" for n in notes)
    shown = result_text({"status": "completed", "results": sources[:1]}, 3)
    assert "[3] a.md (file-a):\nalpha" in shown
    assert "not kept" in result_text({"status": "completed", "results": None}, 1)
    assert queries_of('{"queries": ["a", " ", "b"]}') == ["a", "b"] and queries_of('{"query": "x"}') == ["x"]


def test_parsing_of_each_type() -> None:
    assert extract_text("a.md", b"# Title\nbody") == "# Title\nbody"
    assert "script" not in extract_text("a.html", b"<html><script>script()</script><p>Hi <b>there</b></p></html>")
    assert extract_text("a.json", b'{"a": [1, 2]}').startswith("{\n")
    with pytest.raises(UnsupportedFile) as binary:
        extract_text("a.bin", bytes(range(256)))
    assert binary.value.code == "unsupported_file"
    with pytest.raises(UnsupportedFile) as broken:
        extract_text("a.pdf", b"%PDF-1.4 nothing")
    assert broken.value.code == "invalid_file"


@pytest.fixture
def s3vectors(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    with moto_aws(monkeypatch):
        client = boto3.client("s3vectors", region_name="us-east-1")
        client.create_vector_bucket(vectorBucketName="vectors-test")
        client.create_index(
            vectorBucketName="vectors-test",
            indexName="chunks",
            dataType="float32",
            dimension=4,
            distanceMetric="cosine",
        )
        yield client


def test_s3_vectors_adapter_puts_and_deletes(s3vectors: object) -> None:
    store = S3VectorsStore("vectors-test", "chunks")
    vectors = np.eye(4, dtype=np.float32)[:3]
    store.put("vs_1", "file-a", vectors)
    client = s3vectors
    keys = sorted(v["key"] for v in client.list_vectors(vectorBucketName="vectors-test", indexName="chunks")["vectors"])  # type: ignore[attr-defined]
    assert keys == ["vs_1/file-a/0", "vs_1/file-a/1", "vs_1/file-a/2"]
    got = client.get_vectors(  # type: ignore[attr-defined]
        vectorBucketName="vectors-test", indexName="chunks", keys=["vs_1/file-a/1"], returnMetadata=True
    )["vectors"][0]
    assert got["metadata"] == {"store": "vs_1", "file": "file-a", "chunk": 1}
    store.delete("vs_1", "file-a", 3)
    assert client.list_vectors(vectorBucketName="vectors-test", indexName="chunks")["vectors"] == []  # type: ignore[attr-defined]


def test_s3_vectors_query_request_is_valid_for_the_api() -> None:
    """moto has no QueryVectors: botocore's Stubber checks the request against the service model instead."""
    from botocore.stub import Stubber

    store = S3VectorsStore("vectors-test", "chunks")
    client = boto3.client("s3vectors", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    store.__dict__["_client"] = client
    with Stubber(client) as stub:
        stub.add_response(
            "query_vectors",
            {
                "vectors": [
                    {
                        "key": "vs_1/file-a/2",
                        "distance": 0.25,
                        "metadata": {"store": "vs_1", "file": "file-a", "chunk": 2},
                    }
                ],
                "distanceMetric": "cosine",
            },
            {
                "vectorBucketName": "vectors-test",
                "indexName": "chunks",
                "queryVector": {"float32": [0.5, 0.5]},
                "topK": 100,
                "filter": {"store": {"$eq": "vs_1"}},
                "returnMetadata": True,
                "returnDistance": True,
            },
        )
        assert store.query("vs_1", [0.5, 0.5], 400) == [("file-a", 2, 0.75)]


def test_titan_embeddings_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bedrock Titan Text Embeddings v2: one text per call, the configured size, normalised."""
    import io
    import json

    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from engine.retrieval import embeddings
    from engine.settings import get_settings

    monkeypatch.setenv("EMBEDDINGS_PROVIDER", "bedrock")
    monkeypatch.setenv("EMBEDDING_DIMENSIONS", "256")
    get_settings.cache_clear()
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    monkeypatch.setattr(embeddings, "_bedrock", lambda: client)
    try:
        with Stubber(client) as stub:
            for text, vector in (("alpha", [1.0, 0.0]), ("beta", [0.0, 1.0])):
                payload = json.dumps({"embedding": vector}).encode()
                stub.add_response(
                    "invoke_model",
                    {"body": StreamingBody(io.BytesIO(payload), len(payload)), "contentType": "application/json"},
                    {
                        "modelId": "amazon.titan-embed-text-v2:0",
                        "body": json.dumps({"inputText": text, "dimensions": 256, "normalize": True}),
                    },
                )
            assert embeddings.embed(["alpha", "beta"]) == [[1.0, 0.0], [0.0, 1.0]]
    finally:
        get_settings.cache_clear()
