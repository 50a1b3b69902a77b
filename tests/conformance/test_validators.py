"""The validators themselves: each allowlist entry is still needed (the raw validator still rejects what it covers),
and the validators reject the defects they exist to catch. No server needed."""

from __future__ import annotations

import copy
from typing import Any

import openresponses_types as ort
import pydantic
import pytest

from tests.conformance import validators
from tests.conformance.validators import ALLOWLIST, OPENRESPONSES_EVENTS, validate_event, validate_response

RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "completed_at": 1700000001,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "model": "m",
    "output": [
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "service_tier": "default",
    "store": True,
    "background": False,
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "truncation": "disabled",
    "usage": {
        "input_tokens": 1,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 2,
    },
    "user": None,
    "safety_identifier": None,
    "prompt_cache_key": None,
    "metadata": {},
}
MCP_CALL = {
    "type": "mcp_call",
    "id": "mcp_1",
    "server_label": "calc",
    "name": "add",
    "arguments": "{}",
    "output": "2",
    "error": None,
    "status": "completed",
}
MCP_TOOL = {"type": "mcp", "server_label": "calc", "server_url": "http://127.0.0.1:1/mcp", "require_approval": "never"}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "name": "obj",
    "description": None,
    "schema": {"type": "object"},
    "strict": True,
}
FLAT_ERROR = {"type": "error", "sequence_number": 3, "code": "server_error", "message": "boom", "param": None}
REASONING_DELTA = {
    "type": "response.reasoning_text.delta",
    "sequence_number": 4,
    "item_id": "rs_1",
    "output_index": 0,
    "content_index": 0,
    "delta": "thinking",
}


def _with(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(RESPONSE)
    body.update(copy.deepcopy(changes))
    return body


def test_a_conforming_response_passes_both_validators():
    validate_response(RESPONSE)


@pytest.mark.parametrize(
    ("field", "value"),
    [("presence_penalty", None), ("service_tier", None), ("usage", {"input_tokens": 1}), ("output", None)],
)
def test_a_broken_response_is_rejected(field: str, value: Any):
    with pytest.raises(validators.SchemaViolation):
        validate_response(_with(**{field: value}))


def test_a_missing_required_field_is_rejected():
    body = _with()
    del body["completed_at"]
    with pytest.raises(validators.SchemaViolation, match="openresponses-types"):
        validate_response(body)


def test_unknown_event_types_are_rejected():
    with pytest.raises(validators.SchemaViolation):
        validate_event({"type": "response.vendor_thing", "sequence_number": 0})


def test_an_error_event_with_a_nested_error_object_is_not_allowlisted():
    nested = {**FLAT_ERROR, "error": {"type": "server_error", "code": None, "message": "boom", "param": None}}
    validate_event(nested)  # what Open Responses asks for is accepted by both ...
    del nested["message"]
    with pytest.raises(validators.SchemaViolation):  # ... but openai's ResponseErrorEvent needs the flat message
        validate_event(nested)


def test_refusal_shapes_pass_both_validators():
    refusal = {"type": "refusal", "refusal": "I can't help with that."}
    message = {**RESPONSE["output"][0], "content": [refusal]}
    validate_response(_with(output=[message]))
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    validate_event({"type": "response.refusal.delta", "sequence_number": 4, **where, "delta": "I can't"})
    validate_event({"type": "response.refusal.done", "sequence_number": 5, **where, "refusal": refusal["refusal"]})
    validate_event({"type": "response.content_part.done", "sequence_number": 6, **where, "part": refusal})


# Every allowlist entry: the raw validator still rejects what the entry covers (else the entry must go) and the
# allowlisted validator accepts it.


def _raw_rejects(model: type[pydantic.BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
    except pydantic.ValidationError:
        return True
    return False


def test_allowlist_openai_only_items_still_needed():
    body = _with(output=[MCP_CALL, *RESPONSE["output"]])
    assert _raw_rejects(ort.ResponseResource, body)
    validate_response(body)


def test_allowlist_openai_only_tools_still_needed():
    body = _with(tools=[MCP_TOOL])
    assert _raw_rejects(ort.ResponseResource, body)
    validate_response(body)


def test_allowlist_openai_only_events_still_needed():
    for kind in ("response.mcp_call.completed", "response.custom_tool_call_input.done"):
        assert kind not in OPENRESPONSES_EVENTS
    validate_event({"type": "response.mcp_call.completed", "sequence_number": 1, "item_id": "mcp_1", "output_index": 0})


def test_allowlist_reasoning_text_event_names_still_needed():
    assert "response.reasoning_text.delta" not in OPENRESPONSES_EVENTS
    assert not _raw_rejects(
        OPENRESPONSES_EVENTS["response.reasoning.delta"], {**REASONING_DELTA, "type": "response.reasoning.delta"}
    )
    validate_event(REASONING_DELTA)


def test_allowlist_flat_error_event_still_needed():
    assert _raw_rejects(ort.ErrorStreamingEvent, FLAT_ERROR)
    validate_event(FLAT_ERROR)


def test_allowlist_json_schema_format_schema_still_needed():
    body = _with(text={"format": JSON_SCHEMA_FORMAT, "verbosity": "medium"})
    assert _raw_rejects(ort.ResponseResource, body)
    validate_response(body)
    incomplete = {k: v for k, v in JSON_SCHEMA_FORMAT.items() if k != "description"}
    with pytest.raises(validators.SchemaViolation):  # the entry covers `schema` only, not the other fields
        validate_response(_with(text={"format": incomplete, "verbosity": "medium"}))


def test_every_allowlist_entry_has_a_test_and_a_reason():
    tested = {name.removeprefix("test_allowlist_").removesuffix("_still_needed") for name in globals()}
    for key, reason in ALLOWLIST.items():
        assert key.replace("-", "_") in tested, f"allowlist entry {key!r} has no test_allowlist_… test"
        assert len(reason) > 40, key
