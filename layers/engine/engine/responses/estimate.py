"""The token estimate of a Chat Completions context (``input_tokens``, compaction thresholds, truncation).

No tokenizer ships for arbitrary upstream models, and the ones that exist fetch their vocabularies at run time,
which a Lambda in a closed VPC cannot. Text counts one token per 4 characters (OpenAI's rule of thumb), each
message 3 more, each image 85 (a low-detail tile), tool calls and tools as their JSON.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic_core import to_json

__all__ = ["estimate_tokens"]

_PER_MESSAGE = 3
_PER_IMAGE = 85


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += _PER_MESSAGE + _text_tokens(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            total += _text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                total += _PER_IMAGE if part.get("type") == "image_url" else _text_tokens(to_json(part).decode())
        if message.get("tool_calls"):
            total += _text_tokens(to_json(message["tool_calls"]).decode())
    if tools:
        total += _text_tokens(to_json(tools).decode())
    return total
