"""Hybrid search over vector stores, as OpenAI's file_search does it: vector similarity and keyword (BM25)
rankings merged by reciprocal rank fusion, with attribute filters and a score threshold.

Per store, a :class:`StoreIndex` holds every completed file's chunks (from their index segments): the
embedding matrix and a BM25 inverted index. It is built once per warm process and store *version* (the set of
files and their segment versions), so repeated searches cost a matrix product and a few posting-list walks.
The vector ranking comes from that matrix (``VECTOR_INDEX=local``) or from Amazon S3 Vectors
(``s3vectors``); BM25 always from the segments, since S3 Vectors has no keyword search.

Fusion: each ranking (vector, BM25; per query when several) contributes ``weight / (60 + rank)`` (RRF, k = 60);
a chunk appears in a ranking only if it matches at all (cosine > 0, BM25 > 0). The reported score is the fused
score divided by its maximum (first in every ranking), so it lies in (0, 1] and ``score_threshold`` applies to it.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.models.files import ComparisonFilter, CompoundFilter, Filter, RankingOptions

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Hit", "StoreIndex", "hybrid_search", "matches", "store_index"]

_RRF_K = 60
_BM25_K1 = 1.2
_BM25_B = 0.75
_TERM = re.compile(r"[^\W_]+", re.UNICODE)


def terms(text: str) -> list[str]:
    return _TERM.findall(text.lower())


# --- filters ---------------------------------------------------------------------------------------------------


def _compare(op: str, have: Any, want: Any) -> bool:
    if op in ("in", "nin"):
        found = isinstance(want, list) and have in want
        return found if op == "in" else not found
    if have is None:
        return op == "ne"
    if op == "eq":
        return bool(have == want)
    if op == "ne":
        return bool(have != want)
    numeric = isinstance(have, (int, float)) and isinstance(want, (int, float))
    if not numeric and not (isinstance(have, str) and isinstance(want, str)):
        return False
    return {"gt": have > want, "gte": have >= want, "lt": have < want, "lte": have <= want}[op]


def matches(flt: Filter | None, attributes: dict[str, Any] | None) -> bool:
    """Whether a file's attributes pass a comparison or compound filter (OpenAI's semantics)."""
    if flt is None:
        return True
    attributes = attributes or {}
    if isinstance(flt, CompoundFilter):
        results = (matches(f, attributes) for f in flt.filters)
        return all(results) if flt.type == "and" else any(results)
    assert isinstance(flt, ComparisonFilter)
    return _compare(flt.type, attributes.get(flt.key), flt.value)


# --- the per-store index ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class StoreIndex:
    """All chunks of one store: texts, their file, an embedding matrix and BM25 postings."""

    store_id: str
    texts: list[str]
    file_ids: list[str]
    chunk_numbers: list[int]
    vectors: np.ndarray
    postings: dict[str, tuple[np.ndarray, np.ndarray]]  # term -> (rows, term frequencies)
    lengths: np.ndarray
    rows_of: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.texts)

    def bm25(self, query: str) -> np.ndarray:
        import numpy as np

        scores = np.zeros(self.size, dtype=np.float32)
        if not self.size:
            return scores
        average = float(self.lengths.mean()) or 1.0
        norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * self.lengths / average)
        for term in set(terms(query)):
            posting = self.postings.get(term)
            if posting is None:
                continue
            rows, tf = posting
            idf = math.log(1 + (self.size - len(rows) + 0.5) / (len(rows) + 0.5))
            scores[rows] += idf * tf * (_BM25_K1 + 1) / (tf + norm[rows])
        return scores


def build_index(store_id: str, files: list[tuple[str, Any]]) -> StoreIndex:
    """``files``: ``(file_id, Segment)`` pairs of the store's completed files."""
    import numpy as np

    texts: list[str] = []
    file_ids: list[str] = []
    numbers: list[int] = []
    matrices = []
    for file_id, segment in files:
        texts.extend(segment.texts)
        file_ids.extend([file_id] * len(segment.texts))
        numbers.extend(range(len(segment.texts)))
        if len(segment.texts):
            matrices.append(segment.vectors)
    vectors = np.vstack(matrices) if matrices else np.zeros((0, 1), dtype=np.float32)
    grouped: dict[str, dict[int, int]] = {}
    lengths = np.zeros(len(texts), dtype=np.float32)
    for row, text in enumerate(texts):
        words = terms(text)
        lengths[row] = len(words)
        for word in words:
            counts = grouped.setdefault(word, {})
            counts[row] = counts.get(row, 0) + 1
    postings = {
        word: (np.fromiter(counts.keys(), dtype=np.int64), np.fromiter(counts.values(), dtype=np.float32))
        for word, counts in grouped.items()
    }
    rows_of = {(f, n): row for row, (f, n) in enumerate(zip(file_ids, numbers, strict=True))}
    return StoreIndex(store_id, texts, file_ids, numbers, vectors, postings, lengths, rows_of)


_CACHE: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], StoreIndex] = OrderedDict()
_CACHE_SIZE = 16


def store_index(tenant: str, store_id: str, files: list[dict[str, Any]]) -> StoreIndex:
    """The index of the store's completed files, cached by store version."""
    from engine.storage.vectors import load_segment, segment_key

    done = [f for f in files if f["status"] == "completed" and f.get("chunks")]
    version = tuple((f["id"], str(f.get("segment_version", ""))) for f in done)
    key = (store_id, version)
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    segments = [
        (f["id"], load_segment(segment_key(tenant, store_id, f["id"]), str(f["segment_version"]))) for f in done
    ]
    index = build_index(store_id, segments)
    _CACHE[key] = index
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return index


# --- hybrid search ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    store_id: str
    file_id: str
    chunk: int
    text: str
    score: float


def _ranking(scores: np.ndarray, allowed: np.ndarray, depth: int) -> list[int]:
    """Rows with a positive score among the allowed ones, best first, at most ``depth``."""
    import numpy as np

    candidates = np.flatnonzero(allowed & (scores > 0))
    if candidates.size > depth:
        top = np.argpartition(-scores[candidates], depth - 1)[:depth]
        candidates = candidates[top]
    return [int(r) for r in candidates[np.argsort(-scores[candidates], kind="stable")]]


def hybrid_search(
    indexes: list[tuple[StoreIndex, np.ndarray]],
    queries: list[str],
    query_vectors: list[list[float]],
    *,
    max_results: int,
    ranking: RankingOptions | None = None,
    vector_hits: Any = None,
) -> list[Hit]:
    """Fuse vector and BM25 rankings of every query over the stores' allowed rows (``indexes``: each store's
    index and a boolean mask of the rows the filters allow). ``vector_hits(store_id, vector, k)``, when given,
    supplies the vector ranking (S3 Vectors) as ``(file_id, chunk, similarity)``."""
    import numpy as np

    weights = (1.0, 1.0)
    if ranking is not None and ranking.hybrid_search is not None:
        weights = (ranking.hybrid_search.embedding_weight, ranking.hybrid_search.text_weight)
    depth = max(50, 4 * max_results)
    fused: dict[tuple[int, int], float] = {}
    lists = 0
    for query, vector in zip(queries, query_vectors, strict=True):
        q = np.asarray(vector, dtype=np.float32)
        for weight, kind in zip(weights, ("vector", "text"), strict=True):
            if weight <= 0:
                continue
            ranked: list[tuple[int, int]] = []
            for position, (index, allowed) in enumerate(indexes):
                if not index.size:
                    continue
                if kind == "text":
                    ranked.extend((position, r) for r in _ranking(index.bm25(query), allowed, depth))
                elif vector_hits is not None:
                    for file_id, chunk, similarity in vector_hits(index.store_id, vector, depth):
                        row = index.rows_of.get((file_id, chunk))
                        if row is not None and allowed[row] and similarity > 0:
                            ranked.append((position, row))
                elif index.vectors.shape[1] == q.shape[0]:
                    ranked.extend((position, r) for r in _ranking(index.vectors @ q, allowed, depth))
            if len(indexes) > 1:  # several stores: order their candidates by their score in this ranking
                ranked = _merge_stores(indexes, ranked, kind, query, q)
            lists += 1
            for rank, key in enumerate(ranked[:depth]):
                fused[key] = fused.get(key, 0.0) + weight / (_RRF_K + rank + 1)
    if not fused:
        return []
    best = sum(w for w in weights if w > 0) * len(queries) / (_RRF_K + 1)
    threshold = ranking.score_threshold if ranking is not None and ranking.score_threshold is not None else 0.0
    hits: list[Hit] = []
    for (position, row), score in sorted(fused.items(), key=lambda kv: -kv[1]):
        normalised = min(1.0, score / best)
        if normalised < threshold:
            continue
        index = indexes[position][0]
        hits.append(Hit(index.store_id, index.file_ids[row], index.chunk_numbers[row], index.texts[row], normalised))
        if len(hits) == max_results:
            break
    return hits


def _merge_stores(
    indexes: list[tuple[StoreIndex, np.ndarray]], ranked: list[tuple[int, int]], kind: str, query: str, q: np.ndarray
) -> list[tuple[int, int]]:
    scores: dict[int, np.ndarray] = {}

    def score(key: tuple[int, int]) -> float:
        position, row = key
        if position not in scores:
            index = indexes[position][0]
            scores[position] = index.bm25(query) if kind == "text" else index.vectors @ q
        return float(scores[position][row])

    return sorted(ranked, key=lambda key: -score(key))
