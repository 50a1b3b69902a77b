"""The scripted Chat Completions upstream (local/scripted_upstream.py), driven by the official openai SDK and httpx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from local.scripted_upstream import (
    UpstreamConfig,
    parse_directives,
    serve,
    split_arguments,
    split_exact,
    split_words,
)
from local.sse import frames

pytestmark = pytest.mark.timeout(30)

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in ("get_weather", "get_time", "lookup")
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(UpstreamConfig(model="default-model")) as url:
        yield url


@pytest.fixture(scope="module")
def root(base_url: str) -> str:
    return base_url.removesuffix("/v1")


@pytest.fixture()
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=10) as sdk:
        yield sdk


@pytest.fixture()
def http(root: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=root, timeout=10) as client:
        yield client


def user(text: Any) -> Any:
    return {"role": "user", "content": text}


def stream_chunks(client: openai.OpenAI, messages: list[Any], **kwargs: Any) -> list[Any]:
    return list(client.chat.completions.create(model="m", messages=messages, stream=True, **kwargs))


def sse_payloads(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, asserting the ``data: ...\\n\\n`` framing."""
    assert text.endswith("\n\n")
    parsed = list(frames(text.split("\n")))
    assert all(len(frame.lines) == 1 and frame.lines[0].startswith("data: ") for frame in parsed), parsed
    return [frame.data for frame in parsed]


# ------------------------------------------------------------------------------------------------------------ helpers


def test_split_words_is_exact_and_word_sized() -> None:
    text = "  roles=system,user; last=hello   world \n again  "
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert pieces == ["  roles=system,user;", " last=hello", "   world", " \n again  "]
    assert split_words("") == []
    assert split_words("   ") == ["   "]


def test_split_exact_and_arguments() -> None:
    assert split_exact("a b c d e", 2) == ["a b", " c d e"]
    assert split_exact("a b c", 3) == ["a", " b", " c"]
    with pytest.raises(ValueError):
        split_exact("a b", 3)
    args = '{"city": "Paris", "unit": "celsius"}'
    pieces = split_arguments(args)
    assert len(pieces) >= 3 and "".join(pieces) == args
    assert len(split_arguments("{}")) == 3 and "".join(split_arguments("{}")) == "{}"


def test_parse_directives() -> None:
    script = parse_directives(
        "hi FAIL_MIDSTREAM SLOW 12.5 TTFT 30 REASON cats LENGTH\nREPLY  exact HANG text \nCALL f {}"
    )
    assert script.fail_status is None and script.fail_midstream
    assert (script.slow_ms, script.ttft_ms, script.reason, script.length) == (12.5, 30.0, "cats", True)
    assert script.reply == " exact HANG text "  # REPLY's payload is not scanned: no HANG
    assert not script.hang
    assert [(c.name, c.arguments) for c in script.calls] == [("f", "{}")]
    assert parse_directives("FAIL 503").fail_status == 503
    assert parse_directives("FAILED 503 HANGING fail 500").fail_status is None
    assert not parse_directives("HANGING LENGTHY").hang
    assert parse_directives("REPLY").reply == ""
    assert parse_directives("REPLY one\nREPLY two").reply == "one\ntwo"
    assert parse_directives("CALL g").calls[0].arguments == "{}"


# ---------------------------------------------------------------------------------------------------------------- echo


def test_echo_non_streamed(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "be brief"},
        user("first question"),
        {"role": "assistant", "content": "first answer"},
        user("hello"),
    ]
    completion = client.chat.completions.create(model="gpt-test", messages=messages)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "roles=system,user,assistant,user; last=hello"
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 7  # be brief / first question / first answer / hello
    assert completion.usage.completion_tokens == 2  # "roles=system,user,assistant,user;" "last=hello"
    assert completion.usage.total_tokens == 9


def test_echo_streamed_chunks(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "developer", "content": "dev"}, user("the quick brown fox")]
    chunks = stream_chunks(client, messages, stream_options={"include_usage": True})
    *content_chunks, final, usage_chunk = chunks
    text = "".join(chunk.choices[0].delta.content or "" for chunk in content_chunks)
    assert text == "roles=developer,user; last=the quick brown fox"
    assert len(content_chunks) == len(text.split())  # about one word each
    assert content_chunks[0].choices[0].delta.role == "assistant"
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    for chunk in content_chunks:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == "m"
        assert chunk.choices[0].index == 0
        assert chunk.choices[0].finish_reason is None
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].delta.content is None
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == 5
    assert usage_chunk.usage.completion_tokens == len(text.split())


def test_stream_wire_format_and_done(base_url: str) -> None:
    body = {"model": "wire", "stream": True, "messages": [user("REPLY a b")]}
    response = httpx.post(f"{base_url}/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": "a"}, {"content": " b"}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert all("usage" not in c for c in chunks)  # no include_usage -> no usage chunk


def test_content_parts_and_default_model(base_url: str, client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {"url": "x"}}]
    parts.append({"type": "text", "text": "part two"})
    completion = client.chat.completions.create(model="m", messages=[user(parts)])
    assert completion.choices[0].message.content == "roles=user; last=part one\npart two"
    response = httpx.post(f"{base_url}/chat/completions", json={"messages": [user("x")]})
    assert response.json()["model"] == "default-model"


# ---------------------------------------------------------------------------------------------------------- directives


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, openai.InternalServerError), (500, openai.InternalServerError), (429, openai.RateLimitError)],
)
def test_fail_status(client: openai.OpenAI, status: int, error: type[openai.APIStatusError]) -> None:
    for stream in (False, True):
        with pytest.raises(error) as info:
            client.chat.completions.create(model="m", messages=[user(f"please FAIL {status} now")], stream=stream)
        assert info.value.status_code == status
        assert info.value.body == {"message": "scripted failure", "type": "server_error", "code": None, "param": None}


def test_fail_envelope_raw(base_url: str) -> None:
    response = httpx.post(f"{base_url}/chat/completions", json={"model": "m", "messages": [user("FAIL 502")]})
    assert response.status_code == 502
    expected = {"error": {"message": "scripted failure", "type": "server_error", "code": None, "param": None}}
    assert response.json() == expected


def test_fail_midstream_breaks_the_stream(client: openai.OpenAI) -> None:
    seen: list[str] = []
    stream = client.chat.completions.create(model="m", messages=[user("one two three FAIL_MIDSTREAM")], stream=True)
    with pytest.raises(openai.APIConnectionError) as broken:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert type(broken.value.__cause__).__name__ == "RemoteProtocolError"  # incomplete chunked read
    assert seen == ["roles=user;", " last=one"]
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=[user("FAIL_MIDSTREAM")])
    assert info.value.status_code == 500


def test_slow_and_ttft_still_answer(client: openai.OpenAI) -> None:
    chunks = stream_chunks(client, [user("SLOW 1 TTFT 2 a b")])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "roles=user; last=SLOW 1 TTFT 2 a b"
    completion = client.chat.completions.create(model="m", messages=[user("TTFT 1 REPLY done")])
    assert completion.choices[0].message.content == "done"


def test_reason_streamed_and_not(client: openai.OpenAI) -> None:
    chunks = stream_chunks(client, [user("REASON penguins\nREPLY Penguins are birds.")])
    reasoning = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks if c.choices]
    pieces = [r for r in reasoning if r is not None]
    assert pieces == ["thinking", " about", " penguins"]
    first_content = next(i for i, c in enumerate(chunks) if c.choices[0].delta.content)
    assert all(r is None for r in reasoning[first_content:])  # reasoning strictly before the content
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Penguins are birds."
    completion = client.chat.completions.create(model="m", messages=[user("REASON penguins")])
    message = completion.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == "thinking about penguins"
    assert message.content == "roles=user; last=REASON penguins"
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 3


def test_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=[user("LENGTH")])
    assert completion.choices[0].finish_reason == "length"
    chunks = stream_chunks(client, [user("REPLY cut LENGTH")])  # LENGTH inside REPLY's line is text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "cut LENGTH"
    chunks = stream_chunks(client, [user("LENGTH\nREPLY cut")])
    assert chunks[-1].choices[0].finish_reason == "length"


def test_reply_exact(client: openai.OpenAI) -> None:
    text = "Hello,  world!\tTabs and  spaces stay."
    completion = client.chat.completions.create(model="m", messages=[user(f"intro line\nREPLY {text}\nafter")])
    assert completion.choices[0].message.content == text
    chunks = stream_chunks(client, [user(f"REPLY {text}")])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert len([c for c in chunks if c.choices[0].delta.content]) == 6


def test_call_parallel_non_streamed(client: openai.OpenAI) -> None:
    prompt = 'weather?\nCALL get_weather {"city": "Paris"}\nCALL get_time {"tz": "Europe/Paris"}'
    completion = client.chat.completions.create(model="m", messages=[user(prompt)], tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_1", "function", "get_weather", '{"city": "Paris"}'),
        ("call_2", "function", "get_time", '{"tz": "Europe/Paris"}'),
    ]


def test_call_parallel_streamed_sdk_reassembles(client: openai.OpenAI) -> None:
    prompt = 'CALL get_weather {"city": "Paris", "unit": "celsius"}\nCALL lookup {"q": "a b c"}'
    with client.chat.completions.stream(model="m", messages=[user(prompt)], tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
        ("call_2", "lookup", '{"q": "a b c"}'),
    ]
    deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert len([d for d in deltas if d.index == 0]) >= 3
    assert len([d for d in deltas if d.index == 1]) >= 3


def test_call_streamed_delta_shape(client: openai.OpenAI) -> None:
    chunks = stream_chunks(client, [user('CALL get_weather {"city": "Paris"}')])
    tool_deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    head, *rest = tool_deltas
    assert (head.index, head.id, head.type) == (0, "call_1", "function")
    assert head.function is not None and (head.function.name, head.function.arguments) == ("get_weather", "")
    assert len(rest) >= 3
    assert all(d.index == 0 and d.id is None and d.function is not None and d.function.name is None for d in rest)
    assert "".join(d.function.arguments or "" for d in rest if d.function) == '{"city": "Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_results_reply_instead_of_calling_again(client: openai.OpenAI) -> None:
    prompt = 'CALL get_weather {"city": "Paris"}\nCALL get_time {}'
    messages: list[Any] = [
        user(prompt),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
    ]
    completion = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == 'tool results: {"temp": 21},12:00'
    chunks = stream_chunks(client, messages, tools=TOOLS)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == 'tool results: {"temp": 21},12:00'
    # a new user turn asking again calls again, with ids continuing after the conversation's calls
    again = client.chat.completions.create(model="m", messages=[*messages, user("CALL lookup {}")], tools=TOOLS)
    calls = again.choices[0].message.tool_calls or []
    assert [c.id for c in calls] == ["call_3"]


def test_hang_ends_when_client_disconnects(base_url: str, http: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base_url}/chat/completions", json={"model": "m", "messages": [user("HANG")]}, timeout=0.3)
    deadline = time.monotonic() + 5
    while http.get("/_stats").json()["in_flight"] != 0:
        assert time.monotonic() < deadline, "the hung request was not cancelled by the disconnect"
        time.sleep(0.01)


def test_shutdown_ends_hanging_and_slow_requests() -> None:
    results: dict[str, Any] = {}

    def call(name: str, url: str, text: str, stream: bool) -> None:
        try:
            body = {"model": "m", "stream": stream, "messages": [user(text)]}
            response = httpx.post(f"{url}/chat/completions", json=body, timeout=10)
            results[name] = response.status_code
        except httpx.HTTPError as exc:
            results[name] = type(exc)

    with serve(UpstreamConfig()) as url:
        threads = [
            threading.Thread(target=call, args=("hang", url, "HANG", False)),
            threading.Thread(target=call, args=("slow", url, "SLOW 60000 a b c", True)),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while httpx.get(url.removesuffix("/v1") + "/_stats").json()["in_flight"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=10)
    assert results == {"hang": 503, "slow": httpx.RemoteProtocolError}


# ------------------------------------------------------------------------------------------------- log and envelopes


def test_request_log_and_stats(base_url: str, http: httpx.Client, client: openai.OpenAI) -> None:
    assert http.delete("/_requests").status_code == 200
    assert http.get("/_requests").json() == {"requests": []}
    before = http.get("/_stats").json()
    messages: list[Any] = [user("logged one")]
    client.chat.completions.create(model="log-model", messages=messages, temperature=0.5)
    stream_chunks(client, [user("logged two")])
    requests = http.get("/_requests").json()["requests"]
    assert [r["body"]["messages"][0]["content"] for r in requests] == ["logged one", "logged two"]
    first, second = requests
    assert first["method"] == "POST" and first["path"] == "/v1/chat/completions"
    assert first["headers"] == {"authorization": "Bearer x", "content-type": "application/json"}
    assert first["body"]["model"] == "log-model" and first["body"]["temperature"] == 0.5
    assert "stream" not in first["body"] and second["body"]["stream"] is True
    assert isinstance(first["ts"], float) and first["ts"] <= second["ts"]
    after = http.get("/_stats").json()
    assert after["requests"] == before["requests"] + 2
    assert after["in_flight"] == 0
    assert after["bytes_sent"] > before["bytes_sent"]
    assert http.delete("/_requests").status_code == 200
    assert http.get("/_requests").json() == {"requests": []}


def test_health_and_paths(http: httpx.Client) -> None:
    response = http.get("/health")
    assert (response.status_code, response.text) == (200, "ok")
    response = http.post("/chat/completions", json={"model": "m", "messages": [user("no prefix")]})
    assert response.json()["choices"][0]["message"]["content"] == "roles=user; last=no prefix"


def test_unknown_path_404(http: httpx.Client) -> None:
    response = http.post("/v1/responses", json={"model": "m"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error" and "/v1/responses" in error["message"]


def test_bad_json_400(http: httpx.Client, client: openai.OpenAI) -> None:
    response = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert set(response.json()["error"]) == {"message", "type", "code", "param"}
    response = http.post("/v1/chat/completions", json={"model": "m"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405 and "error" in response.json()


# ------------------------------------------------------------------------------------------------------ config.chunks


def test_config_chunks_gives_exactly_n_content_chunks() -> None:
    with serve(UpstreamConfig(chunks=7)) as url, openai.OpenAI(base_url=url, api_key="x", max_retries=0) as sdk:
        for prompt in ("hi", " ".join(f"w{i}" for i in range(40))):
            chunks = list(sdk.chat.completions.create(model="m", messages=[user(prompt)], stream=True))
            content = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
            assert len(content) == 7
            text = "".join(content)
            assert text.startswith(f"roles=user; last={prompt}")
            completion = sdk.chat.completions.create(model="m", messages=[user(prompt)])
            assert completion.choices[0].message.content == text  # same text streamed or not
        # REPLY text is exact (not padded), one word per chunk
        chunks = list(sdk.chat.completions.create(model="m", messages=[user("REPLY just this")], stream=True))
        assert [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content] == ["just", " this"]
