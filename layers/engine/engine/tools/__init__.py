"""Tools the model may call. Function tools are run by the client; they are offered to the upstream here."""

from __future__ import annotations

from .function import chat_tool_choice, prepare_tools

__all__ = ["chat_tool_choice", "prepare_tools"]
