"""POST /v1/responses/{response_id}/cancel — stops a queued or running background response."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from engine import cancel_response, tenant_from_authorizer
from engine.http import make_rest_resolver
from engine.observability import logger, metrics, tracer

app = make_rest_resolver()


@app.post("/responses/<response_id>/cancel")
@tracer.capture_method(capture_response=False)
def cancel(response_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    response = cancel_response(tenant, response_id)
    metrics.add_metric(name="ResponsesCancelled", unit=MetricUnit.Count, value=1)
    return response.model_dump(mode="json")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
