"""A stand-in for the python3.13 runtime's ``/var/runtime/bootstrap.py``, for ``make lambda-check``: standard library
only, mounted at ``/var/runtime`` and started as Lambda starts its runtime (``/var/lang/bin/python3.13
/var/runtime/bootstrap.py``) in the check's clean environment.

It loads the handler as the runtime does: ``sys.path`` gets the task root, then the layer paths
(``/opt/python/lib/python3.13/site-packages``, ``/opt/python``), ahead of the runtime's own entries; ``_HANDLER``
``module.function`` is imported (the function's init), then invoked once with the event read from stdin (Lambda
reads it from the Runtime API) and a Lambda context. It prints two marker lines on stdout: ``READY`` after the
import (with the import's milliseconds) and ``RESULT`` with the handler's return value, or the runtime's error
envelope (``Runtime.ImportModuleError`` / the exception's class name). The handler's own logs go to stdout too,
as on Lambda. ``RESULT`` also lists every imported module whose file lies outside the Lambda paths: there must be
none (the check also hides the repository checkout from this process).
"""

import gc
import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any

STARTED = time.perf_counter()
LAMBDA_PATHS = ("/var/task/", "/opt/", "/var/lang/", "/var/runtime/")
READY = "__LAMBDA_CHECK_READY__"
RESULT = "__LAMBDA_CHECK_RESULT__"


class Context:
    """The attributes the python runtime's ``LambdaContext`` has."""

    def __init__(self, timeout_ms: int) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:aws:lambda:{os.environ.get('AWS_REGION')}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _emit(marker: str, payload: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stdout.write(f"\n{marker} {json.dumps(payload, default=str)}\n")
    sys.stdout.flush()


def _error(kind: str, exc: BaseException) -> dict[str, Any]:
    return {"errorType": kind, "errorMessage": str(exc), "stackTrace": traceback.format_exc().splitlines()[-6:]}


def _outside() -> list[str]:
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    return sorted(f for f in files if f and not f.startswith(LAMBDA_PATHS))


def main() -> None:
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[0:0] = [task_root, "/opt/python/lib/python3.13/site-packages", "/opt/python"]
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    begun = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name.replace("/", ".")), function_name)
    except Exception as exc:
        _emit(READY, {"import_ms": (time.perf_counter() - begun) * 1000})
        _emit(RESULT, {"error": _error("Runtime.ImportModuleError", exc), "outside": _outside()})
        return
    imported = time.perf_counter()
    # CPU time of the whole process so far (interpreter start included): on a loaded machine, wall time is mostly
    # waiting for a core, CPU time is the work.
    cpu_ms = time.process_time() * 1000
    ready = {"import_ms": (imported - begun) * 1000, "startup_ms": (begun - STARTED) * 1000, "cpu_ms": cpu_ms}
    # The engine pauses cyclic GC during init; a handler module must have turned it back on by its end.
    _emit(READY, {**ready, "gc_enabled": gc.isenabled()})
    event = json.loads(sys.stdin.read() or "{}")
    timeout_ms = int(sys.argv[1]) if len(sys.argv) > 1 else 3000  # the function's Timeout (the Runtime API's deadline)
    begun = time.perf_counter()
    try:
        result = handler(event, Context(timeout_ms))
        outcome: dict[str, Any] = {"result": result}
    except Exception as exc:
        outcome = {"error": _error(type(exc).__name__, exc)}
    outcome["invoke_ms"] = (time.perf_counter() - begun) * 1000
    outcome["outside"] = _outside()
    _emit(RESULT, outcome)


if __name__ == "__main__":
    main()
