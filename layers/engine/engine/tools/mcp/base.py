"""What every part of the MCP client shares: the server spec, a listed tool, the listing error, and the engine's
logger loaded on first use (so importing the client stays cheap)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["McpError", "McpServerSpec", "McpTool", "Transport", "log_debug", "log_warning"]

Transport = Literal["streamable_http", "sse"]


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """Where and how to reach one MCP server; ``headers`` are already validated (see :func:`validate_headers`)."""

    server_label: str
    server_url: str
    transport: Literal["auto", "sse"] = "auto"  # "sse" = Fireworks' {"type": "sse"}: legacy HTTP+SSE only
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpTool:
    """One tool as the server listed it."""

    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    annotations: dict[str, Any] | None = None

    def to_item(self) -> dict[str, Any]:
        """The tool as it appears in an ``mcp_list_tools`` item's ``tools``."""
        item: dict[str, Any] = {"name": self.name, "input_schema": self.input_schema}
        if self.description is not None:
            item["description"] = self.description
        if self.annotations is not None:
            item["annotations"] = self.annotations
        return item


class McpError(Exception):
    """A server whose tools cannot be listed; ``message`` is what goes into ``mcp_list_tools.error``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def log_warning(message: str, **fields: Any) -> None:
    from engine.observability import logger

    logger.warning(message, extra=fields)


def log_debug(message: str, **fields: Any) -> None:
    from engine.observability import logger

    logger.debug(message, extra=fields)
