"""Chunking by tokens, OpenAI's way: windows of ``max_chunk_size_tokens`` (800) that overlap by
``chunk_overlap_tokens`` (400).

Tokens are estimated, as everywhere in this server (``engine.responses.tokens``): no tokenizer ships for
arbitrary models. A token here is a run of at most 4 letters or digits, or one other non-space character,
which tracks BPE counts of English prose closely (about 4 characters per token). Chunks are cut at token
boundaries and keep the original text between them (whitespace and line breaks included).
"""

from __future__ import annotations

import re
from typing import Any

from engine.errors import InvalidRequestError

__all__ = ["DEFAULT_STRATEGY", "chunk_text", "static_strategy"]

_TOKEN = re.compile(r"[^\W_]{1,4}|[^\s]", re.UNICODE)
DEFAULT_STRATEGY: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}


def static_strategy(strategy: dict[str, Any] | None) -> dict[str, Any]:
    """The static strategy a request's ``chunking_strategy`` means (``auto`` or none: the defaults). The overlap
    may be at most half the chunk size, as OpenAI requires."""
    if not strategy or strategy.get("type") == "auto":
        return DEFAULT_STRATEGY
    static = strategy["static"]
    if static["chunk_overlap_tokens"] > static["max_chunk_size_tokens"] // 2:
        raise InvalidRequestError(
            "chunk_overlap_tokens must not exceed half of max_chunk_size_tokens.",
            param="chunking_strategy.static.chunk_overlap_tokens",
            code="invalid_value",
        )
    return {"type": "static", "static": dict(static)}


def chunk_text(text: str, max_tokens: int = 800, overlap: int = 400) -> list[str]:
    """Windows of ``max_tokens`` tokens, each starting ``max_tokens - overlap`` tokens after the previous."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if not spans:
        return []
    step = max(1, max_tokens - overlap)
    chunks: list[str] = []
    start = 0
    while True:
        end = min(start + max_tokens, len(spans))
        chunks.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            return chunks
        start += step
