"""ChatCompletionsProvider against the scripted model on loopback: deltas, usage, errors, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from engine.providers.base import ChatRequest, Finish, ProviderError, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from engine.providers.chat_completions import ChatCompletionsProvider, chat_body, http_error
from engine.settings import Settings


def _collect(url: str, text: str, timeout: float = 5.0, **extra: Any) -> list[Any]:
    settings = Settings(upstream_base_url=url, upstream_api_key=SecretStr("sk-x"), upstream_timeout_seconds=timeout)
    provider = ChatCompletionsProvider(settings)
    request = ChatRequest(model="m", messages=[{"role": "user", "content": text}], **extra)

    async def run() -> list[Any]:
        try:
            return [event async for event in provider.stream(request)]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def test_text_usage_and_finish(upstream_url: str):
    events = _collect(upstream_url, "REPLY a b")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "a b"
    assert isinstance(events[-1], (Usage, Finish))
    assert any(isinstance(e, Finish) and e.reason == "stop" for e in events)
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.input_tokens > 0 and usage.output_tokens == 2


def test_reasoning_then_text(upstream_url: str):
    events = _collect(upstream_url, "REASON x\nREPLY y")
    kinds = [type(e).__name__ for e in events if isinstance(e, (ReasoningDelta, TextDelta))]
    assert kinds[0] == "ReasoningDelta" and kinds[-1] == "TextDelta"


def test_parallel_tool_call_deltas(upstream_url: str):
    events = _collect(
        upstream_url, 'CALL a {"x":1}\nCALL b {}', tools=[{"type": "function", "function": {"name": "a"}}]
    )
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert {e.index for e in calls} == {0, 1}
    assert "".join(e.arguments for e in calls if e.index == 0) == '{"x":1}'
    assert any(isinstance(e, Finish) and e.reason == "tool_calls" for e in events)


@pytest.mark.parametrize(
    ("directive", "code", "status"),
    [("FAIL 503", "server_error", 503), ("FAIL 429", "rate_limit_exceeded", 429), ("FAIL 400", "invalid_prompt", 400)],
)
def test_http_errors_map_to_provider_errors(upstream_url: str, directive: str, code: str, status: int):
    with pytest.raises(ProviderError) as caught:
        _collect(upstream_url, directive)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert "scripted failure" in caught.value.message


def test_broken_stream_and_timeout_are_provider_errors(upstream_url: str):
    with pytest.raises(ProviderError, match="connection failed|ended before"):
        _collect(upstream_url, "FAIL_MIDSTREAM")
    with pytest.raises(ProviderError, match="timed out"):
        _collect(upstream_url, "HANG", timeout=0.5)


def test_unreachable_upstream_is_a_provider_error():
    with pytest.raises(ProviderError):
        _collect("http://127.0.0.1:9/v1", "hi")


def test_body_only_carries_fields_that_were_set():
    body = chat_body(ChatRequest(model="m", messages=[], temperature=0.2))
    assert body == {
        "model": "m",
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
    }


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (404, b'{"error":{"message":"no such model","code":"model_not_found"}}', "model_not_found"),
        (404, b"not here", "model_not_found"),
        (400, b'{"error":{"message":"too long","code":"context_length_exceeded"}}', "context_length_exceeded"),
        (422, b'{"error":{"message":"bad"}}', "invalid_prompt"),
        (429, b'{"error":{"message":"slow down"}}', "rate_limit_exceeded"),
        (401, b'{"error":{"message":"bad key","code":"invalid_api_key"}}', "server_error"),
        (403, b"forbidden", "server_error"),
        (502, b"<html>bad gateway</html>", "server_error"),
    ],
)
def test_upstream_status_class_and_code_survive(status: int, body: bytes, code: str):
    error = http_error(status, body, "7" if status == 429 else None)
    assert (error.code, error.status) == (code, status)
    assert error.retry_after == (7.0 if status == 429 else None)
    if status in (401, 403):
        assert "refused this server's API key" in error.message


def test_each_event_loop_gets_its_own_session_and_closes_it(upstream_url: str):
    # Given one provider used by several worker steps at once, each on an event loop of its own
    import threading

    settings = Settings(upstream_base_url=upstream_url, upstream_api_key=SecretStr("sk-x"))
    provider = ChatCompletionsProvider(settings)
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "REPLY ok"}])
    errors: list[BaseException] = []

    async def step() -> None:
        try:
            assert [e async for e in provider.stream(request) if isinstance(e, TextDelta)]
        finally:
            await provider.aclose()  # what the worker does at the end of every step

    def run() -> None:
        try:
            asyncio.run(step())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then no step closed another's session, and none is left open
    assert errors == []
    assert len(provider._sessions) == 0
