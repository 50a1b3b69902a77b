"""The WebSocket worker, invoked asynchronously by ``$default``: runs a connection's ``response.create`` messages one
at a time and posts every event to the connection (PostToConnection). Payload ``{"connection_id", "request"?}``."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from engine.observability import inject_invocation_context, metrics, tracer
from engine.responses.websocket import run_worker


@inject_invocation_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    served = run_worker(event)
    metrics.add_metric(name="WebSocketResponses", unit=MetricUnit.Count, value=served)
    return {"connection_id": event["connection_id"], "responses": served}
