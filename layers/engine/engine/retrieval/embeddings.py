"""Embeddings of chunks and queries: the upstream's OpenAI-compatible ``/v1/embeddings``, Amazon Bedrock
(Titan Text Embeddings v2), or ``hash`` - the built-in demo's feature hashing, which needs no model.

``EMBEDDINGS_PROVIDER`` chooses (``auto``: Bedrock when the model provider is Bedrock, the upstream when
``UPSTREAM_BASE_URL`` is set, else ``hash``); ``EMBEDDINGS_MODEL`` and ``EMBEDDING_DIMENSIONS`` say which model
and size. Vectors come back L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache
from typing import Any

from engine.settings import Settings, get_settings

__all__ = ["EmbeddingError", "embed", "embedding_provider", "hashed_embedding"]

_WORD = re.compile(r"[a-z0-9]+")
_BATCH = 64


class EmbeddingError(Exception):
    """The embedding provider failed (ingestion marks the file failed with ``server_error``)."""


def embedding_provider(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.embeddings_provider != "auto":
        return settings.embeddings_provider
    if settings.upstream_provider == "bedrock":
        return "bedrock"
    return "upstream" if settings.upstream_base_url else "hash"


def hashed_embedding(text: str, dims: int) -> list[float]:
    """Feature hashing of the lower-cased words (blake2b picks a dimension and a sign per word)."""
    vector = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[value % dims] += 1.0 if value >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _upstream(texts: list[str], settings: Settings) -> list[list[float]]:
    import httpx

    from engine.providers.chat_completions import ChatCompletionsProvider

    headers = {}
    key = ChatCompletionsProvider(settings)._api_key()  # the same key (env or Secrets Manager) as chat
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = settings.upstream_base_url.rstrip("/") + "/embeddings"
    out: list[list[float]] = []
    with httpx.Client(timeout=settings.upstream_timeout_seconds) as client:
        for start in range(0, len(texts), _BATCH):
            body: dict[str, Any] = {
                "model": settings.embeddings_model or "text-embedding-3-small",
                "input": texts[start : start + _BATCH],
                "dimensions": settings.embedding_dimensions,
            }
            try:
                answer = client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise EmbeddingError(f"The embeddings endpoint could not be reached: {exc}") from exc
            if answer.status_code != 200:
                raise EmbeddingError(f"The embeddings endpoint answered {answer.status_code}: {answer.text[:300]}")
            rows = sorted(answer.json()["data"], key=lambda row: row["index"])
            out.extend(_normalise([float(x) for x in row["embedding"]]) for row in rows)
    return out


@lru_cache(maxsize=1)
def _bedrock() -> Any:
    import boto3

    region = get_settings().bedrock_region or None
    return boto3.client("bedrock-runtime", region_name=region)


def _titan(texts: list[str], settings: Settings) -> list[list[float]]:
    """Titan Text Embeddings v2 takes one text per call (256, 512 or 1024 dimensions, normalised)."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    out: list[list[float]] = []
    for text in texts:
        body = {"inputText": text, "dimensions": settings.embedding_dimensions, "normalize": True}
        try:
            answer = _bedrock().invoke_model(
                modelId=settings.embeddings_model or "amazon.titan-embed-text-v2:0", body=json.dumps(body)
            )
        except (BotoCoreError, ClientError) as exc:
            raise EmbeddingError(f"Bedrock embeddings failed: {exc}") from exc
        out.append([float(x) for x in json.loads(answer["body"].read())["embedding"]])
    return out


def embed(texts: list[str]) -> list[list[float]]:
    """One normalised vector per text, from the configured provider."""
    if not texts:
        return []
    settings = get_settings()
    provider = embedding_provider(settings)
    if provider == "hash":
        return [hashed_embedding(t, settings.embedding_dimensions) for t in texts]
    if provider == "bedrock":
        return _titan(texts, settings)
    return _upstream(texts, settings)
