"""moto's server in a process of its own: the local stack's DynamoDB, S3, Lambda and Step Functions.

A separate process, not a thread of the stack, because moto spends several milliseconds of CPU per call and
would otherwise hold the stack's GIL while streams are being served.

Step Functions executions really run (moto's ASL interpreter, ``stepfunctions.execute_state_machine``), and
their Lambda tasks run the template's own handler code in this process: moto's Docker-less Lambda backend
(``lambda.use_docker`` false) has its ``invoke`` replaced by :func:`install_lambda_dispatch`, which calls the
``lambda_handler`` of the function the template names, with the JSON payload and a Lambda context, and answers
with the managed runtime's error envelope when it raises (``errorType`` = the exception's class name, which
is what an ASL ``Retry``/``Catch`` matches). This process therefore gets the same environment as the stack's
functions (``local.aws.start_moto`` passes it). Executions run in threads of their own, so invocations of one
function may overlap, as separate Lambda execution environments would (sharing one imported module here).
The server ends itself when the process that started it is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.gateway import LambdaContext

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

ROOT = Path(__file__).resolve().parent.parent

# What POST /moto-api/config would set: executions run, Lambda runs without Docker.
MOTO_CONFIG: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}

Handler = Callable[[Any, Any], Any]
# function name -> (handler, timeout in seconds), or None for a function this process does not know
Resolver = Callable[[str], tuple[Handler, int] | None]


@dataclass
class InvokeContext(LambdaContext):
    """A Lambda context whose ``get_remaining_time_in_millis`` counts down from the function's own Timeout."""

    deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class RuntimeFailure(Exception):
    """An error the Lambda runtime itself reports, under its own ``errorType`` (``Runtime.ImportModuleError``)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _function_name(name_or_arn: str) -> str:
    """``Name`` from ``Name``, ``Name:qualifier`` or ``arn:aws:lambda:region:account:function:Name[:qualifier]``."""
    parts = name_or_arn.split(":")
    return parts[6] if name_or_arn.startswith("arn:") and len(parts) > 6 else parts[0]


def install_lambda_dispatch(resolve: Resolver) -> Callable[[], None]:
    """Make moto's Docker-less Lambda run Python handlers in process; returns a function that undoes it.

    Works in moto's server (this module's ``main``) and under ``mock_aws`` in a test (pinned to moto 5.2.5:
    ``LambdaSimpleBackend.invoke`` is a moto internal). An unknown function is Lambda's 404
    ``ResourceNotFoundException``; an exception is an ``Unhandled`` function error whose ``errorType`` is its
    class name (or its ``error_type``, see :class:`RuntimeFailure`).
    """
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke

    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = _function_name(function_name)
        found = resolve(name)
        if found is None:
            raise UnknownFunctionException(f"arn:aws:lambda:{self.region_name}:{self.account_id}:function:{name}")
        handler, timeout = found
        context = InvokeContext(
            function_name=name,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:{self.region_name}:{self.account_id}:function:{name}",
            log_group_name=f"/aws/lambda/{name}",
            deadline=time.monotonic() + timeout,
        )
        try:
            raw = body.decode() if isinstance(body, bytes) else body
            payload = json.dumps(handler(json.loads(raw) if raw else {}, context)).encode()
        except Exception as exc:  # the managed runtime's envelope for an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps(
                {
                    "errorType": getattr(exc, "error_type", type(exc).__name__),
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc),
                }
            ).encode()
        response_headers["Content-Length"] = str(len(payload))
        return payload

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]

    def undo() -> None:
        LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]

    return undo


def template_resolver() -> Resolver:
    """Handlers of ``template.yaml``'s functions by logical id (the function name the local stack gives them),
    each module imported on first use, as a Lambda cold start would."""
    from local.gateway import _load_module
    from local.template import load_template

    functions = load_template().functions
    loaded: dict[str, Handler] = {}
    lock = threading.Lock()

    def resolve(name: str) -> tuple[Handler, int] | None:
        spec = functions.get(name)
        if spec is None or spec.streams:
            return None
        module, attr = spec.handler.rsplit(".", 1)
        with lock:
            if name not in loaded:
                try:
                    loaded[name] = getattr(_load_module(spec, module), attr)
                except Exception as exc:  # as Lambda reports a failed init (and retries it on the next invoke)
                    sys.modules.pop(f"_lambda_{spec.logical_id}_{module.replace('.', '_')}", None)
                    failure = RuntimeFailure("Runtime.ImportModuleError", f"Unable to import module '{module}': {exc}")

                    def fail(event: Any, context: Any) -> Any:
                        raise failure

                    return fail, spec.timeout
        return loaded[name], spec.timeout

    return resolve


def _exit_with_parent(parent: int) -> None:
    """End this server when the stack that started it is gone, however it ended (even SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def serialize_dynamodb() -> None:
    """Run moto's DynamoDB operations one at a time. moto's TransactWriteItems deep-copies the table to roll back
    with, and a write from another request thread during that copy fails the transaction with a 500
    ("dictionary changed size during iteration"). DynamoDB itself serializes writes to an item; no DynamoDB
    operation calls back into this server, so the lock cannot deadlock."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def serialized(self: DynamoHandler) -> Any:
        with lock:
            return call_action(self)

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]


def cheap_transaction_rollback() -> Callable[[], None]:
    """Make moto's TransactWriteItems keep, for its rollback, only the items the transaction touches. moto deep-copies
    every table a transaction names, once per item of the transaction, so each transaction cost grows with the
    table: after a few thousand stored responses a WebSocket turn (three small transactions) took ~700 ms here.
    Call only with :func:`serialize_dynamodb` in force (nothing else writes during a transaction). Returns the undo."""
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    class _TablesNotCopied:
        """``copy`` as moto's transact_write_items sees it: a table is its own backup (restored item by item)."""

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Table, DynamoType, DynamoType | None, Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            attrs = (op.get("Item") or op.get("Key") or {}) if table is not None else {}
            if table is None or table.hash_key_attr not in attrs:
                continue
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr in attrs else None
            if table.range_key_attr and range_value is None:
                continue  # moto refuses it before writing anything
            saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        models.copy = _TablesNotCopied  # type: ignore[assignment]
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                if range_value is None:
                    if item is None:
                        table.items.pop(hash_value, None)
                    else:
                        table.items[hash_value] = item
                elif item is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        models.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    return undo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Step Functions executions call Lambda (and DynamoDB) on localhost:$MOTO_PORT; set it before moto is imported.
    os.environ["MOTO_PORT"] = str(args.port)
    # The engine is a Lambda layer (/opt/python when deployed); the worker's handler imports it.
    engine = str(ROOT / "layers" / "engine")
    if engine not in sys.path:
        sys.path.insert(0, engine)
    from moto.moto_api._internal.models import moto_api_backend
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    moto_api_backend.set_config(dict(MOTO_CONFIG))  # what POST /moto-api/config does, before any request
    install_lambda_dispatch(template_resolver())
    serialize_dynamodb()
    cheap_transaction_rollback()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    # Build the backends the stack uses before accepting connections (~1.3 s, a second of it Step Functions' ASL
    # interpreter) rather than on their first request: the stack loads its handlers meanwhile, then creates its
    # resources at full speed.
    import moto.stepfunctions.parser.models  # noqa: F401

    for service in ("dynamodb", "iam", "awslambda", "stepfunctions", "s3"):
        app.app_instances[service] = app.create_app(service)  # type: ignore[arg-type]
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(f"moto listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
