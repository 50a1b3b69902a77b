"""A function's init without cyclic garbage collection: off from the first engine import to the end of the
handler module, then everything the imports made is frozen (``gc.freeze``) and collection is on again.

The imports of a function's init build a few hundred classes (pydantic models above all) and hundreds of
thousands of objects, nearly all of which live as long as the process; every collector pass over them during init
is wasted (~9 % of init CPU measured here). Frozen, they are never scanned again, so the passes are not merely
moved to the first request. Only on Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set): the local stack and the tests
import the engine with the collector as usual.

:func:`begin_init` runs when the ``engine`` package is first imported; :func:`end_init` when a handler is made
(``engine.observability.inject_invocation_context``, ``engine.api.asgi.build_app``) and again, as a safety net,
when an invocation starts. ``make lambda-check`` fails a function whose collector is still off once it is ready.
"""

from __future__ import annotations

import gc
import os

__all__ = ["begin_init", "end_init"]

_paused = False
_begun = False


def begin_init() -> None:
    """Pause the collector for the rest of a Lambda function's init (once per process)."""
    global _paused, _begun
    if _begun:
        return
    _begun = True
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and gc.isenabled():
        gc.disable()
        _paused = True


def end_init() -> None:
    """Freeze what init made and turn the collector back on (a no-op unless :func:`begin_init` paused it)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
