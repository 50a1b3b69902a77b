"""Conversation items: the input item union a request accepts and the output items a response holds.

Input models are lenient where real clients are (``type`` omitted on messages, ``id``/``status`` present or
not, ``output_text`` without ``annotations``); output models always carry the fields the spec requires.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_serializer

__all__ = [
    "CompactionItem",
    "CustomToolCallItem",
    "CustomToolCallOutputItem",
    "FileSearchCall",
    "FunctionCallOutputItem",
    "ChatImagePart",
    "ChatTextPart",
    "InputContent",
    "InputFile",
    "InputImage",
    "InputItem",
    "InputText",
    "ItemReference",
    "McpApprovalRequest",
    "McpApprovalResponse",
    "McpCall",
    "McpListTools",
    "Message",
    "OutputContent",
    "ReasoningItem",
    "ReasoningText",
    "ResponseCompactionItem",
    "ResponseCustomToolCall",
    "ResponseFunctionToolCall",
    "ResponseOutputItem",
    "ResponseOutputMessage",
    "ResponseOutputRefusal",
    "ResponseOutputText",
    "ResponseReasoningItem",
    "SummaryText",
]


class _Model(BaseModel):
    """Strict on types, ignores fields newer than ours, and omits ``None`` optionals when dumped."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self._keep_null}

    _keep_null: ClassVar[frozenset[str]] = frozenset()


# --- content parts -----------------------------------------------------------------------------------------


class InputText(_Model):
    type: Literal["input_text"] = "input_text"
    text: str


class InputImage(_Model):
    type: Literal["input_image"] = "input_image"
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto", "original"] = "auto"


class InputFile(_Model):
    type: Literal["input_file"] = "input_file"
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None


class ResponseOutputText(_Model):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class ResponseOutputRefusal(_Model):
    type: Literal["refusal"] = "refusal"
    refusal: str


class ChatImageUrl(_Model):
    url: str
    detail: Literal["low", "high", "auto", "original"] = "auto"


class ChatImagePart(_Model):
    """The Chat Completions image part (``{"type": "image_url", "image_url": {"url"}}``) some clients send."""

    type: Literal["image_url"] = "image_url"
    image_url: str | ChatImageUrl

    def as_input_image(self) -> InputImage:
        if isinstance(self.image_url, str):
            return InputImage(image_url=self.image_url)
        return InputImage(image_url=self.image_url.url, detail=self.image_url.detail)


class ChatTextPart(_Model):
    type: Literal["text"] = "text"
    text: str


InputContent = Annotated[
    InputText | InputImage | InputFile | ResponseOutputText | ResponseOutputRefusal | ChatImagePart | ChatTextPart,
    Field(discriminator="type"),
]
OutputContent = Annotated[ResponseOutputText | ResponseOutputRefusal, Field(discriminator="type")]


class SummaryText(_Model):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningText(_Model):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


# --- input items -------------------------------------------------------------------------------------------


class Message(_Model):
    """``EasyInputMessage`` and ``message`` in one: ``type`` may be omitted, ``content`` may be a string."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputContent]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCallItem(_Model):
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None
    namespace: str | None = None


class CustomToolCallItem(_Model):
    type: Literal["custom_tool_call"] = "custom_tool_call"
    call_id: str
    name: str
    input: str
    id: str | None = None


class CustomToolCallOutputItem(_Model):
    type: Literal["custom_tool_call_output"] = "custom_tool_call_output"
    call_id: str
    output: str | list[InputContent]
    id: str | None = None


class FunctionCallOutputItem(_Model):
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: str | list[InputContent]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class ReasoningItem(_Model):
    type: Literal["reasoning"] = "reasoning"
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class McpListTools(_Model):
    """``mcp_list_tools``: the tools one MCP server offered (also resent by clients as history)."""

    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    id: str
    server_label: str
    tools: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None

    _keep_null: ClassVar[frozenset[str]] = frozenset({"error"})


class McpCall(_Model):
    """``mcp_call``: one tool call the server ran on an MCP server, with its ``output`` or ``error``."""

    type: Literal["mcp_call"] = "mcp_call"
    id: str
    server_label: str
    name: str
    arguments: str = ""
    output: str | None = None
    error: dict[str, Any] | str | None = None
    status: Literal["in_progress", "completed", "incomplete", "calling", "failed"] | None = None
    approval_request_id: str | None = None

    _keep_null: ClassVar[frozenset[str]] = frozenset({"output", "error"})


class FileSearchCall(_Model):
    """``file_search_call``: a search this server ran over vector stores; ``results`` only with
    ``include=["file_search_call.results"]``."""

    type: Literal["file_search_call"] = "file_search_call"
    id: str
    queries: list[str] = Field(default_factory=list)
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"] = "in_progress"
    results: list[dict[str, Any]] | None = None

    _keep_null: ClassVar[frozenset[str]] = frozenset({"results"})


class McpApprovalRequest(_Model):
    type: Literal["mcp_approval_request"] = "mcp_approval_request"
    id: str
    server_label: str
    name: str
    arguments: str = ""


class McpApprovalResponse(_Model):
    type: Literal["mcp_approval_response"] = "mcp_approval_response"
    approval_request_id: str
    approve: bool
    reason: str | None = None
    id: str | None = None


class CompactionItem(_Model):
    """A ``compaction`` item sent back by value: the summary of what it replaced, sealed by this deployment."""

    type: Literal["compaction"] = "compaction"
    encrypted_content: str = Field(max_length=10_485_760)
    id: str | None = None


class ItemReference(_Model):
    type: Literal["item_reference"] = "item_reference"
    id: str


def _item_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type") or "message")
    return str(getattr(value, "type", "message"))


InputItem = Annotated[
    Annotated[Message, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[CompactionItem, Tag("compaction")]
    | Annotated[McpListTools, Tag("mcp_list_tools")]
    | Annotated[McpCall, Tag("mcp_call")]
    | Annotated[McpApprovalRequest, Tag("mcp_approval_request")]
    | Annotated[McpApprovalResponse, Tag("mcp_approval_response")]
    | Annotated[FileSearchCall, Tag("file_search_call")],
    Discriminator(_item_tag),
]


# --- output items ------------------------------------------------------------------------------------------

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class ResponseOutputMessage(_Model):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: ItemStatus = "in_progress"
    content: list[OutputContent] = Field(default_factory=list)
    phase: Literal["commentary", "final_answer"] | None = None


class ResponseFunctionToolCall(_Model):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str = ""
    status: ItemStatus = "in_progress"
    namespace: str | None = None


class ResponseCustomToolCall(_Model):
    id: str
    type: Literal["custom_tool_call"] = "custom_tool_call"
    call_id: str
    name: str
    input: str = ""


class ResponseReasoningItem(_Model):
    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: ItemStatus = "in_progress"


class ResponseCompactionItem(_Model):
    """The ``compaction`` item a compaction produces: opaque to the client (a sealed summary)."""

    id: str
    type: Literal["compaction"] = "compaction"
    encrypted_content: str


ResponseOutputItem = Annotated[
    ResponseOutputMessage
    | ResponseCompactionItem
    | ResponseFunctionToolCall
    | ResponseCustomToolCall
    | ResponseReasoningItem
    | McpListTools
    | McpCall
    | McpApprovalRequest
    | FileSearchCall,
    Field(discriminator="type"),
]
