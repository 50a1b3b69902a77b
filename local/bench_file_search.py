"""``make bench``'s file_search section, on the local stack (moto S3 and Step Functions, the in-process index) with
the scripted upstream's ``/v1/embeddings``:

- **Ingestion**: 10 files of 1,000 chunks each (100-token static chunks, no overlap: 10,000 chunks), added to one
  store in a file batch; wall time from the batch create to the last file ``completed`` (parse, chunk, embed over
  HTTP, index segment to S3, all through one Step Functions execution per file). Reported as chunks/s.
- **Search latency** over that 10,000-chunk store, ``POST /vector_stores/{id}/search`` (``max_num_results`` 10),
  hybrid against vector-only and keyword-only (``ranking_options.hybrid_search`` weights), interleaved, after one
  search that builds the store's in-memory index (reported on its own). p50/p99 and hybrid / vector-only as a ratio.

Standalone: ``PYTHONPATH=layers/engine:. .venv/bin/python -m local.bench_file_search [--queries 200]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import httpx

__all__ = ["file_search_bench"]

FILES = 10
CHUNKS_PER_FILE = 1_000
CHUNK_TOKENS = 100
AUTH = {"Authorization": "Bearer sk-bench"}


def _vocabulary(rng: random.Random, size: int = 5_000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)]


def _document(rng: random.Random, words: list[str], chunks: int) -> str:
    """About ``chunks`` windows of 100 estimated tokens: words of 3-9 letters are 1-3 tokens each, so 50 words
    plus punctuation per window."""
    sentences = []
    for _ in range(chunks * 5):
        sentences.append(" ".join(rng.choice(words) for _ in range(10)) + ".")
    return " ".join(sentences)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def file_search_bench(base_url: str, queries: int = 200) -> dict[str, Any]:
    """Run the section against a running stack; returns the figures (see the module docstring)."""
    rng = random.Random(13)
    words = _vocabulary(rng)
    strategy = {"type": "static", "static": {"max_chunk_size_tokens": CHUNK_TOKENS, "chunk_overlap_tokens": 0}}
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=120) as http:
        file_ids = []
        uploaded_bytes = 0
        for n in range(FILES):
            text = _document(rng, words, CHUNKS_PER_FILE).encode()
            uploaded_bytes += len(text)
            answer = http.post("/files", files={"file": (f"doc{n}.txt", text)}, data={"purpose": "assistants"})
            answer.raise_for_status()
            file_ids.append(answer.json()["id"])
        store = http.post("/vector_stores", json={"name": "bench"}).json()
        started = time.perf_counter()
        batch = http.post(
            f"/vector_stores/{store['id']}/file_batches", json={"file_ids": file_ids, "chunking_strategy": strategy}
        ).json()
        while True:
            state = http.get(f"/vector_stores/{store['id']}/file_batches/{batch['id']}").json()
            if state["status"] != "in_progress":
                break
            time.sleep(0.05)
        ingest_seconds = time.perf_counter() - started
        assert state["file_counts"]["completed"] == FILES, state
        chunks = _count_chunks(http, store["id"])

        def search(weights: tuple[float, float] | None, query: str) -> float:
            body: dict[str, Any] = {"query": query, "max_num_results": 10}
            if weights is not None:
                body["ranking_options"] = {"hybrid_search": {"embedding_weight": weights[0], "text_weight": weights[1]}}
            began = time.perf_counter()
            answer = http.post(f"/vector_stores/{store['id']}/search", json=body)
            elapsed = (time.perf_counter() - began) * 1000
            answer.raise_for_status()
            return elapsed

        first = search(None, " ".join(rng.choice(words) for _ in range(3)))
        sides: dict[str, tuple[float, float] | None] = {
            "hybrid": None,
            "vector only": (1.0, 0.0),
            "keyword only": (0.0, 1.0),
        }
        timings: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(queries):
            query = " ".join(rng.choice(words) for _ in range(3))
            for name, weights in sides.items():
                timings[name].append(search(weights, query))
    return {
        "chunks": chunks,
        "files": FILES,
        "bytes": uploaded_bytes,
        "ingest_seconds": ingest_seconds,
        "chunks_per_second": chunks / ingest_seconds,
        "first_search_ms": first,
        "search_ms": timings,
    }


def _count_chunks(http: httpx.Client, store_id: str) -> int:
    """The store's chunks, from the local stack's table (the API reports bytes, not chunks)."""
    import json
    import os

    import boto3

    health = httpx.get(str(http.base_url).removesuffix("/v1/").removesuffix("/v1") + "/_local/health").json()
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=health["aws_endpoint_url"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    rows = ddb.query(
        TableName=health["table_name"],
        KeyConditionExpression="pk = :p AND begins_with(sk, :f)",
        ExpressionAttributeValues={":p": {"S": f"VS#{store_id}"}, ":f": {"S": "FILE#"}},
    )["Items"]
    return sum(int(json.loads(row["doc"]["S"]).get("chunks", 0)) for row in rows)


def summary(figures: dict[str, Any]) -> str:
    lines = [
        f"ingestion: {figures['chunks']} chunks in {figures['files']} files ({figures['bytes'] / 1e6:.1f} MB) "
        f"in {figures['ingest_seconds']:.1f} s = {figures['chunks_per_second']:.0f} chunks/s",
        f"first search (builds the index): {figures['first_search_ms']:.0f} ms",
    ]
    for name, values in figures["search_ms"].items():
        lines.append(f"search {name}: p50 {statistics.median(values):.1f} ms, p99 {_pct(values, 0.99):.1f} ms")
    return "\n".join(lines)


def main() -> int:
    from local.scripted_upstream import UpstreamConfig, serve_process
    from local.stack import running_stack

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with serve_process(UpstreamConfig()) as upstream, running_stack(upstream_base_url=upstream) as stack:
        print(summary(file_search_bench(stack, args.queries)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
