"""Identifiers in OpenAI's style (``resp_…``, ``msg_…``), time-ordered so newer ids sort after older ones."""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """``<prefix>_`` + 12 hex digits of milliseconds + 36 random hex digits (48 hex, like OpenAI's)."""
    return f"{prefix}_{int(time.time() * 1000):012x}{os.urandom(18).hex()}"
