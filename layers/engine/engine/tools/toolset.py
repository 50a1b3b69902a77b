"""The tools of one response: function tools (run by the client) and MCP servers (run here).

``ToolSet`` is built and validated before anything streams (every 4xx is raised here), then, per model turn,
says which tools the model is offered (``allowed_tools`` and ``tool_choice`` enforced, not advisory) and
what each name the model calls refers to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import InvalidRequestError
from engine.models.tools import HOSTED_TOOLS, McpToolParam
from engine.models.tools import ApprovalFilter as _ApprovalFilter
from engine.models.tools import ToolNamesFilter as _ToolNames
from engine.observability import logger
from engine.tools.function import CustomTool, FunctionTool, parse_custom_tool, parse_function_tool, validate_tool
from engine.tools.mcp import McpServerSpec, McpTool, check_destination, validate_headers

if TYPE_CHECKING:
    # file_search (and the files models it validates filters with) loads only for a request that names the tool,
    # as the turn loop's search does: the functions of the create path do not pay for it at cold start.
    from engine.tools.file_search import FileSearchSpec

__all__ = ["HOSTED_TOOLS", "McpServerRef", "Target", "ToolSet", "build_toolset"]

_CHAT_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def _reject_hosted_mcp(raw: dict[str, Any], index: int) -> None:
    """OpenAI-hosted connectors (``connector_id``) and tunnels (``tunnel_id``) run inside OpenAI: a clear 400
    rather than a confusing 'server_url missing'."""
    for key, what in (("connector_id", "OpenAI-hosted connectors"), ("tunnel_id", "OpenAI MCP tunnels")):
        if raw.get(key) and not raw.get("server_url"):
            raise InvalidRequestError(
                f"{what} ('{key}') are not available on this server: give the MCP server's 'server_url' instead.",
                param=f"tools[{index}].{key}",
                code="unsupported_value",
            )


@dataclass(slots=True)
class McpServerRef:
    """One MCP server of the request: where it is, which tools may be used, which need approval."""

    spec: McpServerSpec
    allowed: set[str] | None
    read_only: bool
    approval: Literal["always", "never"] | _ApprovalFilter
    echo: dict[str, Any]

    def permits(self, tool: McpTool) -> bool:
        if self.allowed is not None and tool.name not in self.allowed:
            return False
        return not self.read_only or bool((tool.annotations or {}).get("readOnlyHint"))

    def needs_approval(self, tool: McpTool | str) -> bool:
        name = tool if isinstance(tool, str) else tool.name
        if isinstance(self.approval, str):
            return self.approval == "always"
        never = self.approval.never
        if never and never.tool_names and name in never.tool_names:
            return False
        if never and never.read_only and not isinstance(tool, str):
            if (tool.annotations or {}).get("readOnlyHint"):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Target:
    """What a name the model called refers to."""

    kind: Literal["function", "custom", "mcp", "file_search"]
    name: str
    server_label: str | None = None
    namespace: str | None = None


@dataclass(slots=True)
class ToolSet:
    echoed: list[dict[str, Any]] = field(default_factory=list)
    functions: list[FunctionTool] = field(default_factory=list)
    customs: list[CustomTool] = field(default_factory=list)
    # namespace -> its function tools (offered as namespace__name, returned as function_call with namespace)
    namespaces: dict[str, list[FunctionTool]] = field(default_factory=dict)
    servers: dict[str, McpServerRef] = field(default_factory=dict)
    # hosted tool types in the request that no provider here can run (not offered; reported in a header)
    ignored: list[str] = field(default_factory=list)
    # label -> tools the server listed (this response, or an mcp_list_tools item already in context)
    listed: dict[str, list[McpTool]] = field(default_factory=dict)
    # file_search: run here over the request's vector stores (engine.tools.file_search)
    file_search: FileSearchSpec | None = None
    _targets: dict[str, Target] = field(default_factory=dict)

    @property
    def has_tools(self) -> bool:
        return bool(self.functions or self.customs or self.namespaces or self.servers or self.file_search)

    def model_name(self, item: dict[str, Any]) -> str:
        """The function name the model knows a history item's call by."""
        if item.get("type") == "mcp_call":
            return self.chat_name(item["server_label"], item["name"])
        if item.get("type") == "file_search_call":
            return next((c for c, t in self._targets.items() if t.kind == "file_search"), "file_search")
        if item.get("namespace"):
            wanted = Target("function", str(item["name"]), namespace=str(item["namespace"]))
            for chat, target in self._targets.items():
                if target == wanted:
                    return chat
            return _CHAT_NAME.sub("_", f"{item['namespace']}__{item['name']}")[:64]
        return str(item["name"])

    def chat_name(self, server_label: str, tool_name: str) -> str:
        """The function name the model sees for an MCP tool (unique, and valid for any upstream)."""
        for chat, target in self._targets.items():
            if target.kind == "mcp" and target.server_label == server_label and target.name == tool_name:
                return chat
        return _CHAT_NAME.sub("_", tool_name)[:64]

    def refresh(self) -> None:
        """Recompute the names the model sees (after tools were listed)."""
        self._targets = {f.name: Target("function", f.name) for f in self.functions}
        self._targets.update({c.name: Target("custom", c.name) for c in self.customs})
        # A namespace's tools keep their own names where those are unique (models do best with plain names),
        # else they become namespace__name.
        members_by_name: dict[str, int] = {}
        for members in self.namespaces.values():
            for f in members:
                members_by_name[f.name] = members_by_name.get(f.name, 0) + 1
        for namespace, members in self.namespaces.items():
            for f in members:
                chat = _CHAT_NAME.sub("_", f.name)[:64]
                if chat in self._targets or members_by_name[f.name] > 1:
                    chat = _CHAT_NAME.sub("_", f"{namespace}__{f.name}")[:64]
                self._targets[chat] = Target("function", f.name, namespace=namespace)
        for label, tools in self.listed.items():
            server = self.servers.get(label)
            for tool in tools:
                if server is None or not server.permits(tool):
                    continue
                chat = _CHAT_NAME.sub("_", tool.name)[:64]
                if chat in self._targets:
                    chat = _CHAT_NAME.sub("_", f"{label}__{tool.name}")[:64]
                self._targets[chat] = Target("mcp", tool.name, label)
        if self.file_search is not None:
            chat = "file_search" if "file_search" not in self._targets else "file_search_hosted"
            self._targets[chat] = Target("file_search", "file_search")

    def remember_listings(self, items: list[dict[str, Any]]) -> None:
        """``mcp_list_tools`` items already in the context are reused, not listed again."""
        for item in items:
            label = item.get("server_label")
            if item.get("type") == "mcp_list_tools" and label in self.servers and not item.get("error"):
                self.listed[label] = [
                    McpTool(
                        name=t["name"],
                        input_schema=t.get("input_schema") or {},
                        description=t.get("description"),
                        annotations=t.get("annotations"),
                    )
                    for t in item.get("tools") or []
                ]
        self.refresh()

    def resolve(self, chat_name: str) -> Target:
        return self._targets.get(chat_name) or Target("function", chat_name)

    def mcp_tool(self, label: str, name: str) -> McpTool | None:
        return next((t for t in self.listed.get(label, []) if t.name == name), None)

    def offer(
        self, tool_choice: str | dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], str | dict[str, Any] | None]:
        """(the Chat Completions ``tools`` the model may see this turn, the Chat ``tool_choice``)."""
        self.refresh()
        chat: list[dict[str, Any]] = []
        for name, target in self._targets.items():
            if target.kind == "function":
                pool = self.namespaces[target.namespace] if target.namespace else self.functions
                chat.append(next(f for f in pool if f.name == target.name).to_chat(name))
            elif target.kind == "custom":
                chat.append(next(c for c in self.customs if c.name == name).to_chat())
            elif target.kind == "file_search":
                from engine.tools.file_search import chat_function

                chat.append(chat_function(name))
            else:
                assert target.server_label is not None
                tool = self.mcp_tool(target.server_label, target.name)
                assert tool is not None
                function: dict[str, Any] = {"name": name, "parameters": tool.input_schema or {"type": "object"}}
                if tool.description:
                    function["description"] = tool.description
                chat.append({"type": "function", "function": function})
        if not chat:
            return [], None
        if tool_choice is None or isinstance(tool_choice, str):
            return chat, tool_choice
        kind = tool_choice.get("type")
        if kind in ("function", "custom"):
            return chat, {"type": "function", "function": {"name": tool_choice["name"]}}
        if kind == "file_search":
            forced = next(c for c, t in self._targets.items() if t.kind == "file_search")
            return chat, {"type": "function", "function": {"name": forced}}
        if kind in HOSTED_TOOLS:
            return chat, "auto"  # a hosted tool nobody here runs: the model chooses among the others
        if kind == "mcp":
            label = str(tool_choice.get("server_label"))
            if tool_choice.get("name"):
                forced = self.chat_name(label, str(tool_choice["name"]))
                return chat, {"type": "function", "function": {"name": forced}}
            server_tools = [t for t in chat if self.resolve(t["function"]["name"]).server_label == label]
            return server_tools, "required" if server_tools else None
        # allowed_tools: only the listed tools are offered at all
        keep = [t for t in chat if self._allowed(t["function"]["name"], tool_choice.get("tools") or [])]
        return keep, (tool_choice.get("mode", "auto") if keep else None)

    def _allowed(self, chat_name: str, allowed: list[dict[str, Any]]) -> bool:
        target = self.resolve(chat_name)
        for entry in allowed:
            if entry.get("type") == "function" and target.kind == "function" and entry.get("name") == target.name:
                return True
            if entry.get("type") == "file_search" and target.kind == "file_search":
                return True
            if entry.get("type") == "mcp" and target.server_label == entry.get("server_label"):
                if entry.get("name") in (None, target.name):
                    return True
        return False


def _redacted(param: McpToolParam) -> dict[str, Any]:
    """The tool as echoed and stored: credentials are never written back."""
    echo = param.model_dump(exclude_none=True, exclude={"authorization"})
    if param.headers:
        echo["headers"] = dict.fromkeys(param.headers, "<redacted>")
    return echo


def _check_tool_choice(tool_choice: str | dict[str, Any] | None, toolset: ToolSet, *, strict: bool) -> None:
    if tool_choice is None or isinstance(tool_choice, str):
        if tool_choice not in (None, "auto", "none", "required"):
            raise InvalidRequestError(
                f"Invalid tool_choice: '{tool_choice}'.", param="tool_choice", code="invalid_value"
            )
        return
    names = {f.name for f in toolset.functions} | {c.name for c in toolset.customs}
    kind = tool_choice.get("type")
    if kind in HOSTED_TOOLS and not strict:
        return
    if kind in ("function", "custom"):
        if tool_choice.get("name") not in names:
            raise InvalidRequestError(
                f"Tool choice '{tool_choice.get('name')}' not found in 'tools' parameter.", param="tool_choice"
            )
    elif kind == "file_search":
        if toolset.file_search is None:
            raise InvalidRequestError("Tool choice 'file_search' not found in 'tools' parameter.", param="tool_choice")
    elif kind == "mcp":
        if tool_choice.get("server_label") not in toolset.servers:
            raise InvalidRequestError(
                f"MCP server '{tool_choice.get('server_label')}' not found in 'tools' parameter.", param="tool_choice"
            )
    elif kind == "allowed_tools":
        if tool_choice.get("mode", "auto") not in ("auto", "required") or not isinstance(
            tool_choice.get("tools"), list
        ):
            raise InvalidRequestError(
                "tool_choice.allowed_tools needs mode 'auto' or 'required' and a list of tools.",
                param="tool_choice",
                code="invalid_value",
            )
        for entry in tool_choice["tools"]:
            ok = (
                (entry.get("type") == "function" and entry.get("name") in names)
                or (entry.get("type") == "mcp" and entry.get("server_label") in toolset.servers)
                or (entry.get("type") == "file_search" and toolset.file_search is not None)
            )
            if not ok:
                raise InvalidRequestError(
                    f"Allowed tool {entry.get('name') or entry.get('server_label')!r} not found in 'tools' parameter.",
                    param="tool_choice.tools",
                )
    else:
        raise InvalidRequestError(
            f"Unsupported tool_choice type '{kind}'.", param="tool_choice.type", code="invalid_value"
        )


def _unique(toolset: ToolSet, name: str, index: int) -> None:
    if name in {f.name for f in toolset.functions} | {c.name for c in toolset.customs}:
        raise InvalidRequestError(f"Duplicate tool name '{name}'.", param=f"tools[{index}].name")


async def build_toolset(
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    *,
    allow_private: bool,
    strict: bool = False,
) -> ToolSet:
    """Validate the request's ``tools`` (shapes, headers, MCP destinations) and ``tool_choice``. Hosted tools
    no provider here can run are left out (``strict``: a 400, as OpenAI answers for an unknown tool type)."""
    toolset = ToolSet()
    for index, raw in enumerate(tools or []):
        kind = raw.get("type")
        if kind in HOSTED_TOOLS and not strict:
            logger.info("hosted tool not offered to the model", extra={"tool_type": kind})
            toolset.ignored.append(str(kind))
            continue
        if kind == "file_search":
            if toolset.file_search is not None:
                raise InvalidRequestError("Only one file_search tool is allowed.", param=f"tools[{index}]")
            from engine.tools.file_search import parse_file_search

            toolset.file_search = parse_file_search(raw, index)
            toolset.echoed.append(toolset.file_search.model_dump(exclude_none=True))
            continue
        if kind == "custom":
            custom = parse_custom_tool(raw, index)
            _unique(toolset, custom.name, index)
            toolset.customs.append(custom)
            toolset.echoed.append(custom.model_dump(exclude_none=True))
            continue
        if kind == "namespace":
            namespace = str(raw.get("name") or "")
            members = raw.get("tools")
            if not _CHAT_NAME.sub("", namespace) or not isinstance(members, list):
                raise InvalidRequestError(
                    "A namespace tool needs a 'name' and a list of function 'tools'.", param=f"tools[{index}]"
                )
            toolset.namespaces[namespace] = [parse_function_tool(m, index) for m in members]
            toolset.echoed.append(raw)
            continue
        if kind == "function":
            tool = parse_function_tool(raw, index)
            _unique(toolset, tool.name, index)
            toolset.functions.append(tool)
            toolset.echoed.append(tool.model_dump())
        elif kind in ("mcp", "sse"):
            _reject_hosted_mcp(raw, index)
            param = validate_tool(McpToolParam, raw, index)
            label = param.server_label or _CHAT_NAME.sub("_", param.server_url.split("//")[-1].split("/")[0])
            if label in toolset.servers:
                raise InvalidRequestError(f"Duplicate server_label '{label}'.", param=f"tools[{index}].server_label")
            await check_destination(param.server_url, allow_private=allow_private, param=f"tools[{index}].server_url")
            headers = validate_headers(param.headers, param.authorization, param=f"tools[{index}].headers")
            allowed = param.allowed_tools
            toolset.servers[label] = McpServerRef(
                spec=McpServerSpec(
                    server_label=label,
                    server_url=param.server_url,
                    transport="sse" if param.type == "sse" else "auto",
                    headers=headers,
                ),
                allowed=set(allowed)
                if isinstance(allowed, list)
                else (set(allowed.tool_names) if allowed and allowed.tool_names is not None else None),
                read_only=bool(allowed.read_only) if isinstance(allowed, _ToolNames) else False,
                approval=param.require_approval or "always",
                echo={**_redacted(param), "server_label": label},
            )
            toolset.echoed.append(toolset.servers[label].echo)
        else:
            raise InvalidRequestError(
                f"Tool type '{kind}' is not supported by this server.",
                param=f"tools[{index}].type",
                code="invalid_value",
            )
    _check_tool_choice(tool_choice, toolset, strict=strict)
    return toolset
