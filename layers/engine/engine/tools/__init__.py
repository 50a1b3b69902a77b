"""Tools the model may call: function tools (run by the client) and MCP servers (run by this server)."""

from __future__ import annotations

from engine.tools.pairing import check_pairing
from engine.tools.toolset import McpServerRef, Target, ToolSet, build_toolset

__all__ = ["McpServerRef", "Target", "ToolSet", "build_toolset", "check_pairing"]
