"""``$connect`` of the WebSocket API (``wss://…/responses``): the API's authorizer (the REST API's function, the same
key check and tenant) has allowed the upgrade; record the connection and its tenant for the routes that follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.api.tenancy import tenant_from_authorizer
from engine.errors import APIError
from engine.observability import inject_invocation_context
from engine.responses.websocket_routes import connect

if TYPE_CHECKING:
    # annotations only: the first import that runs is the engine's, so init's GC pause (engine.coldstart) covers
    # Powertools' imports too
    from aws_lambda_powertools.utilities.typing import LambdaContext


@inject_invocation_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["requestContext"]
    try:
        tenant = tenant_from_authorizer(request.get("authorizer"))
    except APIError as exc:
        return {"statusCode": exc.status_code}
    connected_ms = request.get("connectedAt")
    connect(request["connectionId"], tenant, int(connected_ms) // 1000 if connected_ms else None)
    return {"statusCode": 200}
