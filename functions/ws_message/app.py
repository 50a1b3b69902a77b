"""``$default`` of the WebSocket API: every client message. It must answer within API Gateway's 29 s, so it only
checks the message (a bad one is answered with an error event) and hands it to the worker, or queues it behind
the response in flight; events go back through the management API, never as this route's answer."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from engine.observability import inject_invocation_context, logger
from engine.responses.websocket_routes import receive


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
