"""Tools the model may call. Function tools are run by the client; they are offered to the upstream here."""

from __future__ import annotations

from .function import apply_tool_choice, prepare_tools
from .pairing import check_pairing

__all__ = ["apply_tool_choice", "check_pairing", "prepare_tools"]
