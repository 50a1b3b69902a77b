"""Two independent schema validators for every Response body and every SSE event the server emits.

1. Open Responses: the PyPI package ``openresponses-types`` (pydantic models generated from the Open Responses
   OpenAPI document): ``ResponseResource`` for Response bodies and the ``*StreamingEvent`` models for events (the
   package has no event union; :data:`OPENRESPONSES_EVENTS` maps each model's ``type`` to it).
2. OpenAI: the ``openai`` SDK's own types, built WITH validation through ``pydantic.TypeAdapter``
   (``Response`` and the ``ResponseStreamEvent`` union). The SDK itself constructs them without validation, so a
   missing required field would otherwise only surface when a client touches it.

Where the two specs disagree, or Open Responses does not cover an OpenAI feature the server implements, the
divergence is listed in :data:`ALLOWLIST` with its reason, and the validator checks that part against the other
spec instead. Nothing else is tolerated; ``test_validators.py`` proves each entry is still needed.
"""

from __future__ import annotations

import typing
from collections import Counter
from typing import Any

import openai.types.responses as oai
import openresponses_types as ort
import pydantic
from pydantic import BaseModel, TypeAdapter

__all__ = [
    "ALLOWLIST",
    "OPENAI_EVENT_TYPES",
    "OPENRESPONSES_EVENTS",
    "allowances_used",
    "validate_event",
    "validate_events",
    "validate_response",
]

ALLOWLIST: dict[str, str] = {
    "openai-only-items": (
        "Open Responses has no MCP or custom-tool items (ResponseResource.output is message|function_call|"
        "function_call_output|reasoning|compaction): mcp_list_tools/mcp_call/mcp_approval_request/custom_tool_call "
        "are checked against openai's types only"
    ),
    "openai-only-tools": (
        "Open Responses' Tool is function-only: echoed mcp/custom/namespace tools are checked against openai's Tool "
        "union only"
    ),
    "openai-only-events": (
        "Open Responses defines no MCP, custom-tool or compaction stream events: response.mcp_*, "
        "response.custom_tool_call_input.* and response.compaction.compacting are checked against openai's types only"
    ),
    "json-schema-format-schema": (
        "openresponses-types 2.4.0 types JsonSchemaResponseFormat.schema as None (generator bug: the spec's "
        "JsonSchemaResponseFormat.json says object|null): the echoed schema object is checked by openai's types, "
        "the rest of text.format by Open Responses"
    ),
    "reasoning-text-event-names": (
        "Open Responses calls OpenAI's response.reasoning_text.delta/done `response.reasoning.delta/done` (same "
        "fields): the server follows OpenAI's name, the payload is checked against the Open Responses model"
    ),
    "flat-error-event": (
        "Open Responses nests the `error` event's fields under `error`; OpenAI's ResponseErrorEvent is flat and "
        "openai 3.51's Stream raises APIError on any event with a truthy top-level `error`, so the server sends it "
        "flat: its fields are checked against Open Responses' ErrorPayload (the event `type` fills its `type`)"
    ),
}

OPENAI_ONLY_ITEM_TYPES = frozenset({"mcp_list_tools", "mcp_call", "mcp_approval_request", "custom_tool_call"})
OPENAI_ONLY_TOOL_TYPES = frozenset({"mcp", "custom", "namespace"})
OPENAI_ONLY_EVENT_PREFIXES = (
    "response.mcp_list_tools.",
    "response.mcp_call_arguments.",
    "response.mcp_call.",
    "response.custom_tool_call_input.",
    "response.compaction.",
)
REASONING_TEXT_RENAMES = {
    "response.reasoning_text.delta": "response.reasoning.delta",
    "response.reasoning_text.done": "response.reasoning.done",
}

_used: Counter[str] = Counter()


def allowances_used() -> Counter[str]:
    """How often each allowlist entry was applied in this process (for reporting)."""
    return Counter(_used)


def _allow(key: str) -> None:
    assert key in ALLOWLIST, key
    _used[key] += 1


def _event_type_of(model: type[BaseModel]) -> str:
    annotation = model.model_fields["type"].annotation
    if typing.get_origin(annotation) is typing.Literal:
        return str(typing.get_args(annotation)[0])
    members = list(typing.cast(Any, annotation))
    assert len(members) == 1, (model, members)
    return str(members[0].value)


OPENRESPONSES_EVENTS: dict[str, type[BaseModel]] = {
    _event_type_of(model): model
    for name in dir(ort)
    if name.endswith("StreamingEvent") and not name.startswith("WebSocket")
    for model in [getattr(ort, name)]
    if isinstance(model, type) and issubclass(model, BaseModel)
}

_OPENAI_EVENT_MODELS: dict[str, type[BaseModel]] = {
    _event_type_of(model): model for model in typing.get_args(typing.get_args(oai.ResponseStreamEvent)[0])
}
OPENAI_EVENT_TYPES = frozenset(_OPENAI_EVENT_MODELS)

_openai_response: TypeAdapter[oai.Response] = TypeAdapter(oai.Response)
_openai_event: TypeAdapter[oai.ResponseStreamEvent] = TypeAdapter(oai.ResponseStreamEvent)


class SchemaViolation(AssertionError):
    """A body or event rejected by a validator; the message names the validator and the pydantic errors."""


def _fail(validator: str, what: str, error: pydantic.ValidationError, data: Any) -> SchemaViolation:
    return SchemaViolation(f"{validator} rejects {what}:\n{error}\n--- data ---\n{data!r}"[:6000])


# --------------------------------------------------------------------------------------------------------------------
# Response bodies


def _openresponses_view(body: dict[str, Any]) -> dict[str, Any]:
    """The body as Open Responses sees it: allowlisted OpenAI-only items and tools checked apart and left out."""
    view = dict(body)
    output = body.get("output")
    if isinstance(output, list):
        kept = []
        for item in output:
            if isinstance(item, dict) and item.get("type") in OPENAI_ONLY_ITEM_TYPES:
                _allow("openai-only-items")
                continue
            kept.append(item)
        view["output"] = kept
    tools = body.get("tools")
    if isinstance(tools, list):
        kept = []
        for tool in tools:
            if isinstance(tool, dict) and tool.get("type") in OPENAI_ONLY_TOOL_TYPES:
                _allow("openai-only-tools")
                continue
            kept.append(tool)
        view["tools"] = kept
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict) and text["format"].get("type") == "json_schema":
        if text["format"].get("schema") is not None:
            _allow("json-schema-format-schema")
            view["text"] = {**text, "format": {**text["format"], "schema": None}}
    return view


def validate_openresponses_response(body: dict[str, Any]) -> None:
    try:
        ort.ResponseResource.model_validate(_openresponses_view(body))
    except pydantic.ValidationError as error:
        raise _fail("openresponses-types ResponseResource", f"response {body.get('id')}", error, body) from None


def validate_openai_response(body: dict[str, Any]) -> None:
    try:
        _openai_response.validate_python(body)
    except pydantic.ValidationError as error:
        raise _fail("openai.types.responses.Response", f"response {body.get('id')}", error, body) from None


def validate_response(body: dict[str, Any]) -> None:
    """Both validators accept this Response body (non-streamed answer, retrieve(), or a lifecycle snapshot)."""
    assert isinstance(body, dict) and body.get("object") == "response", body
    validate_openai_response(body)
    validate_openresponses_response(body)


# --------------------------------------------------------------------------------------------------------------------
# Stream events


def validate_openai_event(event: dict[str, Any]) -> None:
    kind = event.get("type")
    try:
        _openai_event.validate_python(event)
    except pydantic.ValidationError as error:
        model = _OPENAI_EVENT_MODELS.get(str(kind))
        if model is None:
            raise _fail("openai ResponseStreamEvent", f"unknown event type {kind!r}", error, event) from None
        try:  # the union's error lists every member; the member's own error is the readable one
            model.model_validate(event)
        except pydantic.ValidationError as narrow:
            error = narrow
        raise _fail(f"openai {model.__name__}", f"event #{event.get('sequence_number')}", error, event) from None


def validate_openresponses_event(event: dict[str, Any]) -> None:
    kind = str(event.get("type"))
    data = event
    if kind.startswith(OPENAI_ONLY_EVENT_PREFIXES):
        _allow("openai-only-events")
        return
    if kind in REASONING_TEXT_RENAMES:
        _allow("reasoning-text-event-names")
        kind = REASONING_TEXT_RENAMES[kind]
        data = {**event, "type": kind}
    if kind == "error" and "error" not in event:
        _allow("flat-error-event")
        try:
            ort.ErrorPayload.model_validate(event)
        except pydantic.ValidationError as error:
            raise _fail("openresponses-types ErrorPayload", "the flat error event", error, event) from None
        return
    item = event.get("item")
    if isinstance(item, dict) and item.get("type") in OPENAI_ONLY_ITEM_TYPES:
        _allow("openai-only-items")
        return
    response = event.get("response")
    if isinstance(response, dict):
        data = {**data, "response": _openresponses_view(response)}
    model = OPENRESPONSES_EVENTS.get(kind)
    if model is None:
        raise SchemaViolation(f"Open Responses knows no event type {kind!r}: {event!r}"[:3000])
    try:
        model.model_validate(data)
    except pydantic.ValidationError as error:
        what = f"event #{event.get('sequence_number')}"
        raise _fail(f"openresponses-types {model.__name__}", what, error, event) from None


def validate_event(event: dict[str, Any]) -> None:
    """Both validators accept this SSE event (the parsed JSON of one ``data:`` line)."""
    assert isinstance(event, dict) and isinstance(event.get("type"), str), event
    validate_openai_event(event)
    validate_openresponses_event(event)


def validate_events(events: list[dict[str, Any]]) -> None:
    for event in events:
        validate_event(event)
