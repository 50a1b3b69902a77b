"""``$disconnect`` of the WebSocket API: the connection's state (its cached response, its queue) is deleted."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from engine.observability import inject_invocation_context
from engine.responses.websocket_routes import disconnect


@inject_invocation_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    disconnect(event["requestContext"]["connectionId"])
    return {"statusCode": 200}
