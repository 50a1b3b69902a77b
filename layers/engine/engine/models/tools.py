"""The request's ``tools``, ``tool_choice``, ``prompt`` and ``conversation``, typed before anything reads them.

Each is validated by the pydantic models here (so a list where a name belongs is a 400 naming
``tools[0].name``, never a ``TypeError`` further on), then kept as the dict the client sent, which is what the
tool set, the echo and the stored params work with. The OpenAPI document shows the models' schemas.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from engine.models.items import InputFile, InputImage, InputText

__all__ = [
    "HOSTED_TOOLS",
    "ConversationParam",
    "McpToolParam",
    "PromptParam",
    "PromptParamDict",
    "ToolChoiceParam",
    "ToolParam",
    "ToolParamModel",
    "ToolNamesFilter",
    "ApprovalFilter",
]

# Tools OpenAI runs on its own infrastructure; no provider here can run them.
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11",
    "code_interpreter", "image_generation", "computer", "computer_use", "computer_use_preview", "local_shell",
    "shell", "apply_patch", "tool_search", "programmatic_tool_calling",
})  # fmt: skip


class _Param(BaseModel):
    # Newer fields than ours are kept (and ignored), as for the request itself.
    model_config = ConfigDict(strict=True, extra="allow")


class FunctionDefinitionParam(_Param):
    """The Chat Completions nested shape's ``function``."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionToolParam(_Param):
    """A function tool: the Responses flat shape, or the Chat Completions nested one (``function``)."""

    type: Literal["function"]
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    function: FunctionDefinitionParam | None = None


class CustomToolFormatParam(_Param):
    type: str
    syntax: str | None = None
    definition: str | None = None


class CustomToolParam(_Param):
    type: Literal["custom"]
    name: str
    description: str | None = None
    format: CustomToolFormatParam | None = None


class NamespaceToolParam(_Param):
    type: Literal["namespace"]
    name: str
    description: str | None = None
    tools: list[FunctionToolParam]


class ToolNamesFilter(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    tool_names: list[str] | None = None
    read_only: bool | None = None


class ApprovalFilter(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    always: ToolNamesFilter | None = None
    never: ToolNamesFilter | None = None


class McpToolParam(BaseModel):
    """``{"type": "mcp", …}`` as OpenAI documents it, or Fireworks' ``{"type": "sse", "server_url"}``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    type: Literal["mcp", "sse"]
    server_label: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")
    server_url: str = Field(min_length=1, max_length=2048)
    server_description: str | None = None
    headers: dict[str, str] | None = None
    authorization: str | None = None
    allowed_tools: list[str] | ToolNamesFilter | None = None
    require_approval: Literal["always", "never"] | ApprovalFilter | None = None


class McpToolEntryParam(McpToolParam):
    """An MCP tool as the request is first checked: ``server_url`` may be missing where an OpenAI-hosted
    ``connector_id`` or ``tunnel_id`` stands in for it, which building the tools then refuses with a clear 400."""

    server_url: str | None = Field(default=None, min_length=1, max_length=2048)  # type: ignore[assignment]
    connector_id: str | None = None
    tunnel_id: str | None = None


class OtherToolParam(_Param):
    """A hosted tool (accepted, not offered) or a type this server does not know (a 400 naming it later)."""

    type: str


# Union tags are bracketed: engine.errors leaves bracketed ``loc`` parts out of ``param`` (tools[0].name, not
# tools[0].function.name).
def _tool_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind in ("mcp", "sse"):
        return "[mcp]"
    return f"[{kind}]" if kind in ("function", "custom", "namespace") else "[other]"


ToolParamModel = Annotated[
    Annotated[FunctionToolParam, Tag("[function]")]
    | Annotated[CustomToolParam, Tag("[custom]")]
    | Annotated[NamespaceToolParam, Tag("[namespace]")]
    | Annotated[McpToolEntryParam, Tag("[mcp]")]
    | Annotated[OtherToolParam, Tag("[other]")],
    Discriminator(_tool_tag),
]


class ToolChoiceFunctionParam(_Param):
    type: Literal["function", "custom"]
    name: str


class ToolChoiceMcpParam(_Param):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


class AllowedToolParam(_Param):
    type: str
    name: str | None = None
    server_label: str | None = None


class ToolChoiceAllowedParam(_Param):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"] = "auto"
    tools: list[AllowedToolParam]


class ToolChoiceOtherParam(_Param):
    """A hosted tool's type (the model then chooses among the others), or one refused later as unsupported."""

    type: str


def _choice_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind in ("function", "custom"):
        return "[function]"
    return f"[{kind}]" if kind in ("mcp", "allowed_tools") else "[other]"


ToolChoiceModel = Annotated[
    Annotated[ToolChoiceFunctionParam, Tag("[function]")]
    | Annotated[ToolChoiceMcpParam, Tag("[mcp]")]
    | Annotated[ToolChoiceAllowedParam, Tag("[allowed_tools]")]
    | Annotated[ToolChoiceOtherParam, Tag("[other]")],
    Discriminator(_choice_tag),
]


class PromptParam(_Param):
    """``prompt``: a stored template's id, its version (default: the template's default) and variables."""

    id: str = Field(min_length=1)
    version: str | None = None
    variables: dict[str, str | InputText | InputImage | InputFile] | None = None


def _conversation_id(value: str) -> str:
    # OpenAI's answer to an id that cannot be a conversation's (not a 404: the id is malformed)
    if not value.startswith("conv"):
        raise PydanticCustomError("invalid_value", "expected an ID that begins with 'conv'")
    return value


ConversationId = Annotated[str, AfterValidator(_conversation_id)]


class ConversationRefParam(_Param):
    id: ConversationId


class _Checked:
    """Validate a dict with ``model`` but keep the dict (what the engine reads); the schema is the model's."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @cache  # noqa: B019 (a handful of module-level instances, kept for the process's life)
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.model)

    def __call__(self, value: dict[str, Any]) -> dict[str, Any]:
        self.adapter().validate_python(value)
        return value

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(self.adapter().core_schema)


_TOOL = _Checked(ToolParamModel)
_TOOL_CHOICE = _Checked(ToolChoiceModel)
_PROMPT = _Checked(PromptParam)
_CONVERSATION = _Checked(ConversationRefParam)

ToolParam = Annotated[dict[str, Any], AfterValidator(_TOOL), _TOOL]
"""One entry of ``tools``."""
ToolChoiceParam = (
    Literal["none", "auto", "required"] | Annotated[dict[str, Any], AfterValidator(_TOOL_CHOICE), _TOOL_CHOICE]
)
"""``tool_choice``: a mode, or which tool(s)."""
PromptParamDict = Annotated[dict[str, Any], AfterValidator(_PROMPT), _PROMPT]
"""``prompt``."""
ConversationParam = ConversationId | Annotated[dict[str, Any], AfterValidator(_CONVERSATION), _CONVERSATION]
"""``conversation``: its id, or ``{"id"}``."""
