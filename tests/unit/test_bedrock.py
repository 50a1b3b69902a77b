"""BedrockProvider without AWS: the Converse request it builds (checked against botocore's own schema), and
ConverseStream answers played through a real botocore client (signing, event-stream framing and parsing) whose
HTTP send is replaced by a ``before-send`` hook, or by botocore's ``Stubber`` for errors before the stream."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from botocore.validate import validate_parameters
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

from engine.providers.base import (
    ChatRequest,
    Finish,
    ProviderError,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from engine.providers.bedrock import BedrockProvider, converse_request
from engine.providers.bedrock import client as bedrock_client
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


# --------------------------------------------------------------------------------------------------------------
# A real bedrock-runtime client whose HTTP layer is replaced


def _frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event-stream encoding (string headers), as Bedrock sends it."""
    raw_headers = b""
    for name, value in headers.items():
        key, val = name.encode(), value.encode()
        raw_headers += bytes([len(key)]) + key + b"\x07" + struct.pack(">H", len(val)) + val
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def ev(kind: str, body: dict[str, Any]) -> bytes:
    headers = {":message-type": "event", ":event-type": kind, ":content-type": "application/json"}
    return _frame(headers, json.dumps(body).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":message-type": "exception", ":exception-type": kind, ":content-type": "application/json"}
    return _frame(headers, json.dumps({"message": message}).encode())


def text(index: int, chunk: str) -> bytes:
    return ev("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": chunk}})


def stop(reason: str = "end_turn") -> bytes:
    return ev("messageStop", {"stopReason": reason})


def usage(**tokens: int) -> bytes:
    return ev("metadata", {"usage": tokens, "metrics": {"latencyMs": 5}})


class RawStream:
    """The urllib3 response botocore reads the event stream from: ``stream()`` yields chunks (an exception in
    the list is raised there; ``BLOCK`` is a read that blocks until ``shutdown()`` or ``close()``)."""

    BLOCK = object()

    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = chunks
        self.closed = threading.Event()
        self.shut = threading.Event()
        self.reading = threading.Event()  # set while stream() is blocked in a read
        self._wake = threading.Event()

    def stream(self, **_: Any) -> Iterator[bytes]:
        for chunk in self.chunks:
            if chunk is self.BLOCK:
                self.reading.set()
                self._wake.wait(10)
                self.reading.clear()
                return
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    def shutdown(self) -> None:  # urllib3's HTTPResponse.shutdown: ends a blocked read, from any thread
        self.shut.set()
        self._wake.set()

    def close(self) -> None:
        self.closed.set()
        self._wake.set()


class LockedRawStream(RawStream):
    """Like urllib3's response: ``close()`` waits for a read in progress (the buffered reader's lock)."""

    def close(self) -> None:
        deadline = time.monotonic() + 5
        while self.reading.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        super().close()


def _eventstream_headers() -> HTTPHeaders:
    headers = HTTPHeaders()
    headers["content-type"] = "application/vnd.amazon.eventstream"
    return headers


class FakeBedrock:
    """A bedrock-runtime client (dummy credentials, no retries) that answers ConverseStream with ``answer``."""

    def __init__(self) -> None:
        self.client = boto3.session.Session().client(
            "bedrock-runtime",
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        self.sent: list[dict[str, Any]] = []
        self.raw: RawStream | None = None
        self.raw_type: type[RawStream] = RawStream
        self.answer: list[Any] | BaseException = [stop(), usage(inputTokens=1, outputTokens=1)]
        self.client.meta.events.register("before-send.bedrock-runtime.ConverseStream", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse:
        self.sent.append(json.loads(request.body))
        assert request.url.endswith("/converse-stream")
        if isinstance(self.answer, BaseException):
            raise self.answer
        self.raw = self.raw_type(self.answer)
        return AWSResponse(request.url, 200, _eventstream_headers(), self.raw)


@pytest.fixture
def fake() -> FakeBedrock:
    return FakeBedrock()


def _provider(fake: FakeBedrock) -> BedrockProvider:
    provider = BedrockProvider(Settings(upstream_provider="bedrock"))
    provider._client_instance = fake.client
    return provider


def _collect(provider: BedrockProvider, request: ChatRequest) -> list[ProviderEvent]:
    async def run() -> list[ProviderEvent]:
        return [event async for event in provider.stream(request)]

    return asyncio.run(run())


def _chat(*messages: dict[str, Any], **extra: Any) -> ChatRequest:
    return ChatRequest(model="anthropic.claude-test-v1:0", messages=list(messages), **extra)


def _valid(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` after botocore's own check against the ConverseStream input shape (raises if invalid)."""
    shape = boto3.session.Session().client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    validate_parameters(kwargs, shape.meta.service_model.operation_model("ConverseStream").input_shape)
    return kwargs


# --------------------------------------------------------------------------------------------------------------
# ChatRequest -> Converse


def test_request_shape_system_alternation_tools_inference_and_images():
    request = _chat(
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": None}},
            ],
        },
        {"role": "user", "content": "and tell me the weather"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "not json"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": ""},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "   "},
        {"role": "user", "content": "Thanks!"},
        tools=[WEATHER, TIME],
        tool_choice="auto",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=256,
        reasoning_effort="high",
        parallel_tool_calls=True,
        user="u1",
    )
    kwargs = _valid(converse_request(request))
    assert kwargs["modelId"] == "anthropic.claude-test-v1:0"
    assert kwargs["system"] == [{"text": "Be brief."}, {"text": "Answer in French."}]
    assert kwargs["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "Look"},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
                {"text": "and tell me the weather"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "get_time", "input": {"raw": "not json"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "(no output)"}]}},
                {"text": "Thanks!"},
            ],
        },
    ]
    assert kwargs["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.3, "topP": 0.9}
    assert kwargs["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather",
                    "inputSchema": {"json": {"type": "object"}},
                }
            },
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ]
    }
    # reasoning_effort, parallel_tool_calls and user have no model-independent Converse field
    assert set(kwargs) == {"modelId", "system", "messages", "inferenceConfig", "toolConfig"}


def test_only_set_fields_are_sent():
    kwargs = _valid(converse_request(_chat({"role": "user", "content": "hi"})))
    assert kwargs == {
        "modelId": "anthropic.claude-test-v1:0",
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", None),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_time"}}, {"tool": {"name": "get_time"}}),
    ],
)
def test_tool_choice(choice: Any, expected: Any):
    kwargs = _valid(
        converse_request(_chat({"role": "user", "content": "hi"}, tools=[WEATHER, TIME], tool_choice=choice))
    )
    assert kwargs["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_sends_no_tools_and_writes_tool_history_as_text():
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    history = (
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    )
    for request in (_chat(*history, tools=[WEATHER], tool_choice="none"), _chat(*history)):
        kwargs = _valid(converse_request(request))
        assert "toolConfig" not in kwargs
        assert kwargs["messages"][1:] == [
            {"role": "assistant", "content": [{"text": '[Called tool get_weather with arguments: {"city":"Oslo"}]'}]},
            {"role": "user", "content": [{"text": "[Result of get_weather]"}, {"text": "rain"}]},
        ]


def test_tool_names_bedrock_refuses_get_a_stable_alias_mapped_back(fake: FakeBedrock):
    name = "billing.invoices:create"
    tool = {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    call = {"id": "weird id/1", "type": "function", "function": {"name": name, "arguments": "{}"}}
    request = _chat(
        {"role": "user", "content": "bill"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "weird id/1", "content": "ok"},
        tools=[tool, WEATHER],
        tool_choice={"type": "function", "function": {"name": name}},
    )
    kwargs = _valid(converse_request(request))
    alias = kwargs["toolConfig"]["tools"][0]["toolSpec"]["name"]
    assert alias != name and alias.startswith("billing_invoices_create_")
    assert kwargs["toolConfig"]["tools"][1]["toolSpec"]["name"] == "get_weather"
    assert kwargs["toolConfig"]["toolChoice"] == {"tool": {"name": alias}}
    use = kwargs["messages"][1]["content"][0]["toolUse"]
    result = kwargs["messages"][2]["content"][0]["toolResult"]
    assert use["name"] == alias and use["toolUseId"] == result["toolUseId"] and use["toolUseId"].startswith("call_")
    assert converse_request(request) == kwargs  # stable across turns

    fake.answer = [
        ev(
            "contentBlockStart",
            {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": alias}}},
        ),
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}),
        stop("tool_use"),
    ]
    events = _collect(_provider(fake), request)
    assert events[0] == ToolCallDelta(index=0, call_id="tooluse_a", name=name)


def test_images_and_files():
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4").decode()
    content = [
        {"type": "text", "text": "Read these"},
        {"type": "file", "file": {"file_data": pdf, "filename": "Q3 report (final).pdf"}},
        {"type": "file", "file": {"file_data": base64.b64encode(b"a,b").decode(), "filename": "Q3 report (final).csv"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
    ]
    blocks = _valid(converse_request(_chat({"role": "user", "content": content})))["messages"][0]["content"]
    assert blocks[1] == {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": b"%PDF-1.4"}}}
    assert blocks[2] == {"document": {"format": "csv", "name": "Q3 report (final) (2)", "source": {"bytes": b"a,b"}}}
    assert blocks[3]["image"]["format"] == "jpeg"


@pytest.mark.parametrize(
    ("part", "match"),
    [
        ({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, "cannot fetch images from a URL"),
        ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}, "PNG, JPEG, GIF and WebP"),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}, "could not be decoded"),
        ({"type": "file", "file": {"file_id": "file-1"}}, "not file_id"),
        ({"type": "input_audio", "input_audio": {}}, "cannot take 'input_audio'"),
    ],
)
def test_content_bedrock_cannot_take_is_invalid_prompt(fake: FakeBedrock, part: dict[str, Any], match: str):
    with pytest.raises(ProviderError, match=match) as caught:
        _collect(_provider(fake), _chat({"role": "user", "content": [part]}))
    assert (caught.value.code, caught.value.status) == ("invalid_prompt", 400)
    assert fake.sent == []  # refused before any call


def test_json_schema_response_format_becomes_output_config():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}}
    kwargs = _valid(converse_request(_chat({"role": "user", "content": "hi"}, response_format=response_format)))
    spec = kwargs["outputConfig"]["textFormat"]
    assert spec["type"] == "json_schema" and spec["structure"]["jsonSchema"]["name"] == "thing"
    assert json.loads(spec["structure"]["jsonSchema"]["schema"]) == schema
    plain = converse_request(_chat({"role": "user", "content": "hi"}, response_format={"type": "json_object"}))
    assert "outputConfig" not in plain


# --------------------------------------------------------------------------------------------------------------
# ConverseStream -> provider events


def test_stream_text_reasoning_parallel_tool_calls_and_usage(fake: FakeBedrock):
    fake.answer = [
        ev("messageStart", {"role": "assistant"}),
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Let me "}}}),
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "think."}}}),
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
        ev("contentBlockStop", {"contentBlockIndex": 0}),
        text(1, "Checking "),
        text(1, "both."),
        ev("contentBlockStop", {"contentBlockIndex": 1}),
        ev(
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_w", "name": "get_weather"}}},
        ),
        ev("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"city": '}}}),
        ev("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '"Paris"}'}}}),
        ev("contentBlockStop", {"contentBlockIndex": 2}),
        ev(
            "contentBlockStart",
            {"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "tooluse_t", "name": "get_time"}}},
        ),
        ev("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": ""}}}),
        ev("contentBlockStop", {"contentBlockIndex": 3}),
        stop("tool_use"),
        usage(inputTokens=20, outputTokens=7, totalTokens=57, cacheReadInputTokens=30, cacheWriteInputTokens=0),
    ]
    events = _collect(_provider(fake), _chat({"role": "user", "content": "hi"}, tools=[WEATHER, TIME]))
    assert events == [
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        TextDelta("Checking "),
        TextDelta("both."),
        ToolCallDelta(index=0, call_id="tooluse_w", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
        ToolCallDelta(index=1, call_id="tooluse_t", name="get_time"),
        ToolCallDelta(index=1, arguments="{}"),  # a call without arguments still gets a JSON object
        Finish("tool_calls"),
        Usage(input_tokens=50, output_tokens=7, cached_tokens=30),
    ]
    assert fake.raw is not None and _wait_for(fake.raw.closed.is_set)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
    ],
)
def test_finish_reasons(fake: FakeBedrock, reason: str, finish: str):
    fake.answer = [text(0, "x"), stop(reason), usage(inputTokens=1, outputTokens=1)]
    events = _collect(_provider(fake), _chat({"role": "user", "content": "hi"}))
    assert Finish(finish) in events  # type: ignore[arg-type]


def test_malformed_output_and_a_stream_without_message_stop_are_errors(fake: FakeBedrock):
    fake.answer = [text(0, "x"), stop("malformed_tool_use")]
    with pytest.raises(ProviderError, match="malformed tool call") as caught:
        _collect(_provider(fake), _chat({"role": "user", "content": "hi"}))
    assert caught.value.code == "server_error"
    fake.answer = [text(0, "x")]
    with pytest.raises(ProviderError, match="ended before"):
        _collect(_provider(fake), _chat({"role": "user", "content": "hi"}))


# --------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("ThrottlingException", 429, "rate_limit_exceeded"),
        ("ServiceQuotaExceededException", 400, "rate_limit_exceeded"),
        ("ValidationException", 400, "invalid_prompt"),
        ("AccessDeniedException", 403, "invalid_prompt"),
        ("ResourceNotFoundException", 404, "invalid_prompt"),
        ("ModelTimeoutException", 408, "server_error"),
        ("ServiceUnavailableException", 503, "server_error"),
        ("InternalServerException", 500, "server_error"),
        ("ModelStreamErrorException", 424, "server_error"),
        ("ModelErrorException", 424, "server_error"),
        ("SomethingNewException", 409, "invalid_prompt"),
        ("SomethingNewException", 502, "server_error"),
    ],
)
def test_errors_before_the_stream(fake: FakeBedrock, error: str, status: int, code: str):
    provider = _provider(fake)
    with Stubber(fake.client) as stubber:
        secret = "arn:aws:iam::123456789012:role/secret-role"
        stubber.add_client_error("converse_stream", error, f"bad thing ({secret})", status)
        with pytest.raises(ProviderError) as caught:
            _collect(provider, _chat({"role": "user", "content": "hi"}))
    assert (caught.value.code, caught.value.status) == (code, status)
    assert error in caught.value.message
    assert "Traceback" not in caught.value.message
    assert (secret in caught.value.message) is (error != "AccessDeniedException")  # the role ARN stays in the log


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("modelStreamErrorException", "server_error", 424),
        ("internalServerException", "server_error", 500),
        ("serviceUnavailableException", "server_error", 503),
        ("throttlingException", "rate_limit_exceeded", 429),
        ("validationException", "invalid_prompt", 400),
    ],
)
def test_exceptions_inside_the_stream(fake: FakeBedrock, kind: str, code: str, status: int):
    fake.answer = [text(0, "partial"), exception(kind, "it broke")]
    seen: list[ProviderEvent] = []

    async def run() -> None:
        async for event in _provider(fake).stream(_chat({"role": "user", "content": "hi"})):
            seen.append(event)

    with pytest.raises(ProviderError, match="it broke") as caught:
        asyncio.run(run())
    assert seen == [TextDelta("partial")]
    assert (caught.value.code, caught.value.status) == (code, status)


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (ReadTimeoutError(endpoint_url="https://bedrock-runtime"), "timed out"),
        ([text(0, "x"), Urllib3ReadTimeout(None, None, "Read timed out.")], "timed out"),  # type: ignore[arg-type]
        ([text(0, "x"), ProtocolError("Connection broken")], "connection failed: ProtocolError"),
    ],
)
def test_timeouts_and_broken_connections(fake: FakeBedrock, answer: Any, match: str):
    fake.answer = answer
    with pytest.raises(ProviderError, match=match) as caught:
        _collect(_provider(fake), _chat({"role": "user", "content": "hi"}))
    assert caught.value.code == "server_error"


def test_missing_credentials_is_a_server_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    provider = BedrockProvider(Settings(upstream_provider="bedrock", bedrock_region="us-east-1"))
    with pytest.raises(ProviderError, match="no AWS credentials") as caught:
        _collect(provider, _chat({"role": "user", "content": "hi"}))
    assert caught.value.code == "server_error"


# --------------------------------------------------------------------------------------------------------------
# Threads, cancellation, the client


def _stream_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "bedrock-stream")


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_closing_the_generator_stops_a_blocked_read_and_closes_the_stream(fake: FakeBedrock):
    fake.answer = [text(0, "first"), RawStream.BLOCK, text(0, "never"), stop()]
    fake.raw_type = LockedRawStream  # closing from the event loop would wait for the blocked read
    before = _stream_threads()

    async def run() -> tuple[list[ProviderEvent], float]:
        stream = cast(AsyncGenerator[ProviderEvent], _provider(fake).stream(_chat({"role": "user", "content": "hi"})))
        first = await anext(stream)
        while not (fake.raw and fake.raw.reading.is_set()):  # the stream thread is now blocked in a read
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await stream.aclose()  # what happens when the client disconnects
        return [first], time.monotonic() - started

    events, took = asyncio.run(run())
    assert events == [TextDelta("first")]
    assert took < 0.5  # the event loop was not held up
    assert fake.raw is not None and fake.raw.shut.is_set()
    assert _wait_for(fake.raw.closed.is_set)  # closed by the stream thread once its read ended
    assert _wait_for(lambda: _stream_threads() == before)


def test_closing_the_generator_closes_the_tcp_connection_to_bedrock():
    """Against a socket on loopback (real urllib3 reads): Bedrock sees the connection close, so it stops."""
    server = socket.create_server(("127.0.0.1", 0))
    upstream_closed = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            conn.recv(65536)
            body = text(0, "hi")
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
            conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(body), body))
            try:
                while conn.recv(65536):  # then hang, as a model that is still thinking
                    pass
                upstream_closed.set()
            except OSError:
                upstream_closed.set()

    threading.Thread(target=serve, daemon=True).start()
    client = boto3.session.Session().client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(read_timeout=30, retries={"total_max_attempts": 1}),
    )
    provider = BedrockProvider(Settings(upstream_provider="bedrock"))
    provider._client_instance = client

    async def run() -> tuple[ProviderEvent, float]:
        stream = cast(AsyncGenerator[ProviderEvent], provider.stream(_chat({"role": "user", "content": "hi"})))
        first = await anext(stream)
        await asyncio.sleep(0.05)  # let the stream thread block in its next read
        started = time.monotonic()
        await stream.aclose()
        return first, time.monotonic() - started

    try:
        first, took = asyncio.run(run())
        assert first == TextDelta("hi") and took < 0.5
        assert upstream_closed.wait(5)
    finally:
        server.close()


def test_cancelling_the_task_closes_the_stream(fake: FakeBedrock):
    fake.answer = [text(0, "first"), RawStream.BLOCK, stop()]
    got: list[ProviderEvent] = []

    async def consume() -> None:
        async for event in _provider(fake).stream(_chat({"role": "user", "content": "hi"})):
            got.append(event)

    async def run() -> None:
        task = asyncio.create_task(consume())
        while not got:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert got == [TextDelta("first")]
    assert fake.raw is not None and _wait_for(fake.raw.closed.is_set)


def test_the_event_loop_keeps_running_while_bedrock_is_slow(fake: FakeBedrock):
    class Slow(RawStream):
        def stream(self, **_: Any) -> Iterator[bytes]:
            time.sleep(0.3)  # a blocking read, as boto3's is
            yield from super().stream()

    fake.answer = [text(0, "late"), stop()]
    fake.raw_type = Slow

    async def run() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        events = [e async for e in _provider(fake).stream(_chat({"role": "user", "content": "hi"}))]
        ticker.cancel()
        assert TextDelta("late") in events
        return ticks

    assert asyncio.run(run()) >= 10


def test_client_is_lazy_cached_and_configured(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = Settings(
        upstream_provider="bedrock",
        bedrock_region="eu-west-3",
        upstream_timeout_seconds=33,
        upstream_connect_timeout_seconds=4,
    )
    provider = BedrockProvider(settings)
    assert provider._client_instance is None  # nothing is created before the first request
    client = provider._client()
    assert provider._client() is client
    assert client.meta.service_model.service_name == "bedrock-runtime"
    assert client.meta.region_name == "eu-west-3"
    assert (client.meta.config.read_timeout, client.meta.config.connect_timeout) == (33, 4)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_importing_the_module_does_not_import_boto3():
    code = (
        "import sys, engine.providers; before = {m for m in ('boto3', 'botocore.session') if m in sys.modules}; "
        "import engine.providers.bedrock; "
        "after = {m for m in ('boto3', 'botocore.session') if m in sys.modules}; "
        "assert after == before, after - before"
    )
    env_path = f"{ROOT / 'layers' / 'engine'}"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": env_path}, timeout=60)


# --------------------------------------------------------------------------------------------------------------
# Through get_provider and the engine


@pytest.fixture
def bedrock_env(monkeypatch: pytest.MonkeyPatch, fake: FakeBedrock) -> Iterator[FakeBedrock]:
    from engine.providers import get_provider
    from engine.settings import get_settings

    monkeypatch.setenv("UPSTREAM_PROVIDER", "bedrock")
    monkeypatch.setenv("UPSTREAM_BASE_URL", "http://127.0.0.1:9/v1")  # ignored: Bedrock was chosen
    monkeypatch.setattr(bedrock_client, "_new_client", lambda settings: fake.client)
    get_settings.cache_clear()
    get_provider.cache_clear()
    yield fake
    get_settings.cache_clear()
    get_provider.cache_clear()


def test_get_provider_picks_bedrock_and_streams(bedrock_env: FakeBedrock):
    from engine.providers import get_provider

    provider = get_provider()
    assert isinstance(provider, BedrockProvider) and provider.name == "bedrock"
    bedrock_env.answer = [text(0, "Hello "), text(0, "there"), stop(), usage(inputTokens=3, outputTokens=2)]

    async def run() -> list[ProviderEvent]:
        return [e async for e in provider.stream(_chat({"role": "user", "content": "hi"}, max_output_tokens=50))]

    assert asyncio.run(run()) == [TextDelta("Hello "), TextDelta("there"), Finish("stop"), Usage(3, 2)]
    assert bedrock_env.sent == [
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 50}}
    ]


def test_engine_turn_loop_on_bedrock(bedrock_env: FakeBedrock):
    from engine.models.request import ResponseCreateParams
    from engine.responses.create import create_response, prepare_create

    bedrock_env.answer = [
        text(0, "Let me check."),
        ev(
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}},
        ),
        ev("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":"Paris"}'}}}),
        stop("tool_use"),
        usage(inputTokens=12, outputTokens=9),
    ]
    params = ResponseCreateParams.model_validate(
        {
            "model": "anthropic.claude-test-v1:0",
            "instructions": "Be brief.",
            "input": "Weather in Paris?",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "store": False,
        }
    )

    async def run() -> Any:
        return await create_response(await prepare_create(params, "default"))

    response = asyncio.run(run())
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output[1].call_id == "tooluse_1" and response.output[1].arguments == '{"city":"Paris"}'
    assert response.usage.input_tokens == 12 and response.usage.output_tokens == 9
    sent = bedrock_env.sent[0]
    assert sent["system"] == [{"text": "Be brief."}]
    assert sent["messages"] == [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
