"""Compaction without a server: what the model is shown of a compacted context, over Chat Completions and
Bedrock's Converse, and the compaction pass over the demo model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters

from engine.providers.base import ChatRequest
from engine.providers.bedrock import converse_request
from engine.providers.demo import DemoProvider
from engine.responses.compaction import COMPACTION_PROMPT, compact_items, open_summaries, retained_messages
from engine.responses.input import SUMMARY_PREFIX, compaction_window, to_chat_messages
from engine.sealing import _keyring, open_sealed, seal
from engine.settings import get_settings


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("REASONING_KEY_SECRET_ARN", raising=False)
    monkeypatch.setenv("REASONING_KEY", "unit-test-key")
    get_settings.cache_clear()
    _keyring.cache_clear()
    yield
    get_settings.cache_clear()
    _keyring.cache_clear()


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def _context() -> tuple[list[dict[str, Any]], dict[str, str]]:
    blob = seal("launch Tuesday; code word slate", "t", "compaction")
    items = [
        _user("plan the launch"),
        _assistant("a long plan"),
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "found"},
        _user("and the code word is slate"),
        {"type": "compaction", "id": "cmp_1", "encrypted_content": blob},
        _assistant("noted"),
        _user("what now?"),
    ]
    return items, open_summaries(items, "t", first_input=0)


def test_the_latest_compaction_hides_all_but_the_user_messages_before_it():
    items, summaries = _context()
    window = compaction_window(items)
    assert [i.get("role", i["type"]) for i in window] == ["user", "user", "compaction", "assistant", "user"]
    assert retained_messages(items) == [items[0], items[4], items[7]]
    messages = to_chat_messages("be brief", items, summaries=summaries)
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "plan the launch"},
        {"role": "user", "content": "and the code word is slate"},
        {"role": "user", "content": SUMMARY_PREFIX + "launch Tuesday; code word slate"},
        {"role": "assistant", "content": "noted"},
        {"role": "user", "content": "what now?"},
    ]


def test_bedrock_sees_the_summary_in_place_of_what_it_replaced():
    items, summaries = _context()
    request = ChatRequest(
        model="anthropic.claude-test-v1:0", messages=to_chat_messages("be brief", items, summaries=summaries)
    )
    kwargs = converse_request(request)
    client = boto3.session.Session().client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    validate_parameters(kwargs, client.meta.service_model.operation_model("ConverseStream").input_shape)
    assert kwargs["system"] == [{"text": "be brief"}]
    # consecutive user messages merge (Bedrock alternates roles); no tool blocks of the compacted call remain
    first, second, third = kwargs["messages"]
    assert first["role"] == "user" and [b["text"] for b in first["content"]] == [
        "plan the launch",
        "and the code word is slate",
        SUMMARY_PREFIX + "launch Tuesday; code word slate",
    ]
    assert second == {"role": "assistant", "content": [{"text": "noted"}]}
    assert third == {"role": "user", "content": [{"text": "what now?"}]}
    assert "toolConfig" not in kwargs


def test_a_compaction_pass_over_the_demo_model_seals_what_it_answered():
    items, summaries = _context()
    request = ChatRequest(model="demo", messages=[], max_output_tokens=16, response_format={"type": "json_object"})

    async def run() -> Any:
        return await compact_items(
            provider=DemoProvider(), chat=request, instructions=None, items=items, tenant="t", summaries=summaries
        )

    compaction = asyncio.run(run())
    # the demo model saw the window plus the compaction request (and no token cap meant for the answer)
    assert "demo model" in compaction.summary and repr(COMPACTION_PROMPT) in compaction.summary
    assert "6 message(s)" in compaction.summary
    assert open_sealed(compaction.item.encrypted_content, "t", "compaction", param="p") == compaction.summary
    assert compaction.retained == retained_messages(items)
    assert compaction.usage.input_tokens > 0 and compaction.usage.output_tokens > 16
