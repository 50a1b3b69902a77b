"""conversation: request input → stored items (ids everywhere) → Chat Completions messages."""

from __future__ import annotations

from engine.models.request import ResponseCreateParams
from engine.responses.input import normalize_input, to_chat_messages


def _items(raw: object) -> list[dict[str, object]]:
    return normalize_input(ResponseCreateParams.model_validate({"model": "m", "input": raw}).input)


def test_string_input_is_one_user_message_with_an_id():
    [item] = _items("hello")
    assert item["type"] == "message" and item["role"] == "user" and item["status"] == "completed"
    assert str(item["id"]).startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "hello"}]


def test_every_item_kind_gets_an_id_and_keeps_a_given_one():
    items = _items(
        [
            {"role": "user", "content": "q", "id": "msg_given"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"type": "reasoning", "summary": []},
            {"role": "assistant", "content": "a"},
        ]
    )
    assert items[0]["id"] == "msg_given"
    assert [str(i["id"]).split("_")[0] for i in items[1:]] == ["fc", "fco", "rs", "msg"]
    assert items[4]["content"] == [{"type": "output_text", "text": "a", "annotations": [], "logprobs": []}]


def test_item_reference_is_kept_for_resolution():
    assert _items([{"type": "item_reference", "id": "msg_x"}]) == [{"type": "item_reference", "id": "msg_x"}]


def test_reasoning_goes_back_only_to_upstreams_that_take_it():
    items = _items(
        [
            {"role": "user", "content": "q"},
            {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "thought"}]},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": []},
        ]
    )
    assert to_chat_messages(None, items) == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    with_reasoning = to_chat_messages(None, items, with_reasoning=True)
    assert with_reasoning[1] == {"role": "assistant", "content": "a", "reasoning_content": "thought"}


def test_chat_messages_map_roles_tools_and_parts():
    items = _items(
        [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ]},
            {"role": "assistant", "content": "calling"},
            {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "A"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "B"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hidden"}]},
        ]
    )  # fmt: skip
    assert to_chat_messages("sys", items) == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        ]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{\"x\":1}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "A"},
        {"role": "tool", "tool_call_id": "c2", "content": "B"},
    ]  # fmt: skip


def test_chat_style_parts_are_accepted_as_their_responses_equivalents():
    [item] = _items(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
                    {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
                ],
            }
        ]
    )
    assert item["content"] == [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
    ]
    assert to_chat_messages(None, [item])[0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png", "detail": "high"},
    }
