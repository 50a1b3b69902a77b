"""Log keys of one invocation stay with it: several functions in one process (the local stack) never stamp
each other's name, request id or correlation id on their lines."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from engine.observability import bind_request, inject_invocation_context, logger
from local.gateway import LambdaContext


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logger.registered_formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_keys_do_not_leak_between_functions_or_after_the_invocation():
    lines = _Lines()
    logger._logger.addHandler(lines)  # the handler Powertools writes through, with its formatter
    try:
        both_running = threading.Barrier(2, timeout=5)

        def handler(event: dict[str, Any], context: Any) -> None:
            both_running.wait()  # the two invocations overlap, as buffered routes do on the gateway's threads
            logger.info("inside", extra={"who": event["who"]})

        a = inject_invocation_context(handler, correlation_id_path="requestContext.requestId")
        b = inject_invocation_context(handler, correlation_id_path="requestContext.requestId")
        calls = [
            threading.Thread(
                target=f, args=({"who": n, "requestContext": {"requestId": f"req-{n}"}}, LambdaContext(n, f"id-{n}"))
            )
            for f, n in ((a, "A"), (b, "B"))
        ]
        for call in calls:
            call.start()
        for call in calls:
            call.join()
        bind_request("stream-req")
        logger.info("streaming app")
        bind_request(None)
        logger.info("outside")
    finally:
        logger._logger.removeHandler(lines)
    inside = {line["who"]: line for line in lines.lines if line["message"] == "inside"}
    for name in ("A", "B"):
        assert inside[name]["function_name"] == name and inside[name]["function_request_id"] == f"id-{name}"
        assert inside[name]["correlation_id"] == f"req-{name}"
    streaming = next(line for line in lines.lines if line["message"] == "streaming app")
    assert streaming["correlation_id"] == "stream-req" and "function_name" not in streaming
    outside = next(line for line in lines.lines if line["message"] == "outside")
    assert not {"function_name", "function_request_id", "correlation_id"} & set(outside)
