"""Input → conversation: normalize request input into stored items, and items into Chat Completions messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import to_json

from engine.ids import new_id
from engine.models.items import (
    ChatImagePart,
    ChatTextPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    InputText,
    ItemReference,
    Message,
    ReasoningItem,
)

__all__ = ["SUMMARY_PREFIX", "compaction_window", "mcp_result_text", "normalize_input", "to_chat_messages"]

# How the model is shown a compaction item: its summary, as a user message after the retained user messages (as
# Codex's own compaction does), saying what it is.
SUMMARY_PREFIX = "Summary of the earlier part of this conversation, which was compacted to save context:\n\n"

_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
    "mcp_approval_response": "mcpa",
    # MCP items sent back by value with an empty id (the fuzzer's): named as this server names its own
    "mcp_list_tools": "mcpl",
    "mcp_call": "mcp",
    "mcp_approval_request": "mcpr",
    "file_search_call": "fs",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "compaction": "cmp",
}


def _as_responses_part(part: Any) -> Any:
    """Chat-Completions-style parts become their Responses equivalents (stored and listed as such)."""
    if isinstance(part, ChatImagePart):
        return part.as_input_image()
    if isinstance(part, ChatTextPart):
        return InputText(text=part.text)
    return part


def _message_item(item: Message) -> dict[str, Any]:
    content: list[dict[str, Any]]
    if isinstance(item.content, str):
        part_type = "output_text" if item.role == "assistant" else "input_text"
        content = [{"type": part_type, "text": item.content}]
        if part_type == "output_text":
            content[0].update(annotations=[], logprobs=[])
    else:
        content = [_as_responses_part(part).model_dump() for part in item.content]
    out: dict[str, Any] = {
        "id": item.id or new_id("msg"),
        "type": "message",
        "role": item.role,
        "content": content,
        "status": item.status or "completed",
    }
    if item.phase is not None:
        out["phase"] = item.phase
    return out


def normalize_input(raw: str | list[InputItem] | None) -> list[dict[str, Any]]:
    """The request's input as stored items: every item gets an ``id`` (``input_items`` pages by id) and a
    ``status``; a string becomes one user message."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [_message_item(Message(role="user", content=raw))]
    items: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, Message):
            items.append(_message_item(item))
        elif isinstance(item, ItemReference):
            items.append({"type": "item_reference", "id": item.id})  # resolved against stored items later
        else:
            data = item.model_dump()
            data["id"] = data.get("id") or new_id(_ID_PREFIX[item.type])
            if isinstance(item, FunctionCallItem | FunctionCallOutputItem | ReasoningItem):
                data["status"] = data.get("status") or "completed"
            items.append(data)
    return items


def _text_parts(content: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Chat content: a plain string when all parts are text (every upstream accepts that), else parts."""
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal", "")})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail")}})
        elif kind == "input_file":
            parts.append(
                {"type": "file", "file": {k: part[k] for k in ("file_data", "file_id", "filename") if k in part}}
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> str | list[dict[str, Any]]:
    return output if isinstance(output, str) else _text_parts(output)


def mcp_result_text(item: dict[str, Any]) -> str:
    """What the model is shown of an MCP call: its output, or its error (a tool error is for the model to see)."""
    if item.get("error"):
        error = item["error"]
        if isinstance(error, dict):
            detail = error.get("message") or " ".join(
                str(part.get("text", "")) for part in error.get("content") or [] if isinstance(part, dict)
            )
            return f"Error ({error.get('type', 'error')}): {detail}"
        return f"Error: {error}"
    return str(item.get("output") or "")


def _add_tool_call(messages: list[dict[str, Any]], call: dict[str, Any]) -> None:
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _is_user_message(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "user"


def compaction_window(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The part of a context the model sees once it was compacted: the latest ``compaction`` item stands for
    everything before it except the user messages, which are retained (what ``/responses/compact`` returns, and
    what a chain with automatic compaction holds), so a client need not prune."""
    last = max((index for index, item in enumerate(items) if item.get("type") == "compaction"), default=-1)
    if last < 0:
        return items
    return [item for item in items[:last] if _is_user_message(item)] + items[last:]


def _plain_name(item: dict[str, Any]) -> str:
    return str(item["name"])


def to_chat_messages(
    instructions: str | None,
    items: list[dict[str, Any]],
    model_name: Callable[[dict[str, Any]], str] = _plain_name,
    *,
    with_reasoning: bool = False,
    summaries: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Stored/request items → Chat Completions ``messages``.

    ``developer`` becomes ``system`` (several upstreams reject the developer role), consecutive function and
    MCP calls join one assistant message with ``tool_calls`` (an MCP call becomes a call plus its result,
    named as the model is offered that tool now), and reasoning, tool lists and approvals stay server-side. A
    compaction item becomes its summary (``summaries``: opened summaries by sealed blob) and hides what it
    replaced (``compaction_window``).
    """
    messages: list[dict[str, Any]] = []
    items = compaction_window(items)
    if instructions:
        messages.append({"role": "system", "content": instructions})
    reasoning: list[str] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning":
            # earlier reasoning goes back only to upstreams that take it (vLLM/DeepSeek style reasoning_content)
            reasoning.extend(str(part.get("text", "")) for part in item.get("content") or [])
        elif kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            content = _text_parts(item.get("content") or [])
            if role == "assistant" and not content:
                continue  # an empty assistant turn (clients resend these) says nothing; upstreams reject it
            message: dict[str, Any] = {"role": role, "content": content}
            if role == "assistant" and with_reasoning and reasoning:
                message["reasoning_content"] = "".join(reasoning)
            reasoning = []
            messages.append(message)
        elif kind == "function_call":
            function = {"name": model_name(item), "arguments": item.get("arguments") or ""}
            _add_tool_call(messages, {"id": item["call_id"], "type": "function", "function": function})
        elif kind == "custom_tool_call":
            function = {"name": model_name(item), "arguments": to_json({"input": item.get("input", "")}).decode()}
            _add_tool_call(messages, {"id": item["call_id"], "type": "function", "function": function})
        elif kind == "mcp_approval_response" and not item.get("approve"):
            # The model learns the call was refused rather than seeing it vanish.
            request = next((i for i in items if i.get("id") == item.get("approval_request_id")), None)
            if request is not None:
                call_id = f"call_{request['id']}"
                name = model_name({"type": "mcp_call", **request})
                function = {"name": name, "arguments": request.get("arguments") or "{}"}
                _add_tool_call(messages, {"id": call_id, "type": "function", "function": function})
                messages.append(
                    {"role": "tool", "tool_call_id": call_id, "content": "The user did not approve this call."}
                )
        elif kind == "mcp_call":
            name = model_name(item)
            function = {"name": name, "arguments": item.get("arguments") or "{}"}
            _add_tool_call(messages, {"id": item["id"], "type": "function", "function": function})
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": mcp_result_text(item)})
        elif kind == "file_search_call":
            from engine.tools.file_search import result_text, sources

            first = len(sources(items[: items.index(item)])) + 1
            arguments = to_json({"queries": item.get("queries") or []}).decode()
            _add_tool_call(
                messages,
                {"id": item["id"], "type": "function", "function": {"name": model_name(item), "arguments": arguments}},
            )
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": result_text(item, first)})
        elif kind == "compaction":
            summary = (summaries or {}).get(str(item.get("encrypted_content")))
            if summary is not None:
                messages.append({"role": "user", "content": SUMMARY_PREFIX + summary})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item["output"])})
    return messages
