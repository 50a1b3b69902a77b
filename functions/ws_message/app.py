"""``$default`` of the WebSocket API: every client message. It must answer within API Gateway's 29 s, so it only
checks the message (a bad one is answered with an error event) and hands it to the worker, or queues it behind
the response in flight; events go back through the management API, never as this route's answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.observability import inject_invocation_context, logger
from engine.responses.websocket_routes import receive

if TYPE_CHECKING:
    # annotations only: the first import that runs is the engine's, so init's GC pause (engine.coldstart) covers
    # Powertools' imports too
    from aws_lambda_powertools.utilities.typing import LambdaContext


@inject_invocation_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["requestContext"]
    logger.thread_safe_append_keys(correlation_id=request.get("requestId"))  # this invocation's context only
    receive(
        request["connectionId"],
        event.get("body"),
        int(request.get("requestTimeEpoch") or 0),
        str(request.get("messageId") or request.get("requestId") or ""),
    )
    return {"statusCode": 200}
