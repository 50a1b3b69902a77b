"""Prompt templates rendered within bounds: time, output size, ``range`` and arithmetic.

Jinja2's immutable sandbox stops templates from reaching Python internals, not from spending CPU or memory:
``range(10**9)`` raised past its error mapping, ``2**100000`` made an integer Python refuses to print, and
``'a' * 10**7`` rendered a 10 MB instruction. Here ``range`` holds at most :data:`MAX_RANGE` items, ``**`` and
``*`` refuse results over :data:`MAX_INT_BITS` bits or the output budget, the output is counted as it is
generated and a time budget is enforced on the template's own code (a trace function on this thread, for the
template's frames: loops that output nothing still end). Rendering runs on a worker thread (see
``prompts.apply_prompt``), so a slow template cannot stall the event loop's other requests. Any failure is a
:class:`TemplateLimitError` or the template's own exception, both turned into a 400 by the caller.
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Template

__all__ = ["MAX_INT_BITS", "MAX_RANGE", "TemplateLimitError", "bounded_environment", "render_bounded"]

MAX_RANGE = 10_000
"""Items one ``range()`` call of a template may produce."""
MAX_INT_BITS = 4_096
"""Bits of an integer a template's ``**`` or ``*`` may produce (about 1,200 digits)."""
_TEMPLATE_FILE = "<template>"  # the file name Jinja2 compiles templates from strings under


class TemplateLimitError(Exception):
    """A template went past one of the rendering limits; the message names the limit."""


def _bounded_range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise TemplateLimitError(f"range() in a prompt template is limited to {MAX_RANGE} items")
    return values


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and value.bit_length() > MAX_INT_BITS


@lru_cache(maxsize=1)
def bounded_environment() -> Any:
    """The sandbox with ``range``, ``**`` and ``*`` bounded (imported on first use: only prompt requests)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * abs(left).bit_length() > MAX_INT_BITS:
                    raise TemplateLimitError(f"'**' in a prompt template is limited to {MAX_INT_BITS}-bit results")
            if operator == "*":
                for sequence, times in ((left, right), (right, left)):
                    if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                        if len(sequence) * times > get_output_limit():
                            raise TemplateLimitError(
                                f"'*' in a prompt template would pass the {get_output_limit()}-character output limit"
                            )
                if isinstance(left, int) and isinstance(right, int):
                    if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                        raise TemplateLimitError(f"'*' in a prompt template is limited to {MAX_INT_BITS}-bit results")
            result = super().call_binop(context, operator, left, right)
            if _too_big(result):
                raise TemplateLimitError(f"arithmetic in a prompt template is limited to {MAX_INT_BITS}-bit results")
            return result

    environment = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    environment.globals["range"] = _bounded_range
    return environment


def get_output_limit() -> int:
    from engine.settings import get_settings

    return get_settings().prompt_max_output_chars


def render_bounded(template: Template, values: dict[str, Any]) -> str:
    """``template`` rendered with ``values`` within the settings' time and output budgets."""
    from engine.settings import get_settings

    settings = get_settings()
    seconds, limit = settings.prompt_render_seconds, settings.prompt_max_output_chars
    deadline = time.monotonic() + seconds

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        # called at every call made while rendering, and at every line of the template's own code
        if time.monotonic() > deadline:
            raise TemplateLimitError(f"rendering a prompt template is limited to {seconds:g} s")
        return trace if frame.f_code.co_filename == _TEMPLATE_FILE else None

    chunks: list[str] = []
    size = 0
    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        for chunk in template.generate(values):
            size += len(chunk)
            if size > limit:
                raise TemplateLimitError(f"a rendered prompt template is limited to {limit} characters")
            chunks.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(chunks)
