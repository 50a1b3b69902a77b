"""The built-in demo model: answers without any upstream, and says so in every reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.providers.base import ChatRequest, Finish, ProviderEvent, TextDelta, Usage

__all__ = ["DemoProvider"]

_LABEL = "[demo model]"


def _text_of(message: dict[str, object]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class DemoProvider:
    """Deterministic replies, streamed word by word; honours ``max_output_tokens`` (one word = one token)."""

    name = "demo"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
        said = _text_of(last_user) if last_user else ""
        reply = (
            f"{_LABEL} Hello! I am the built-in demo model of this Responses API: no upstream model is "
            f"configured (set UPSTREAM_BASE_URL and UPSTREAM_API_KEY). This conversation has "
            f"{len(request.messages)} message(s); you said: {said!r}"
        )
        words = reply.split(" ")
        limit = request.max_output_tokens
        emitted = words if limit is None else words[:limit]
        for i, word in enumerate(emitted):
            yield TextDelta(word if i == 0 else " " + word)
        prompt_words = sum(len(_text_of(m).split()) for m in request.messages)
        yield Usage(input_tokens=prompt_words, output_tokens=len(emitted))
        yield Finish("length" if len(emitted) < len(words) else "stop")
