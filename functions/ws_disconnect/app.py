"""``$disconnect`` of the WebSocket API: the connection's state (its cached response, its queue) is deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.observability import inject_invocation_context
from engine.responses.websocket_routes import disconnect

if TYPE_CHECKING:
    # annotations only: the first import that runs is the engine's, so init's GC pause (engine.coldstart) covers
    # Powertools' imports too
    from aws_lambda_powertools.utilities.typing import LambdaContext


@inject_invocation_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    disconnect(event["requestContext"]["connectionId"])
    return {"statusCode": 200}
