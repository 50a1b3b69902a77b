"""POST /v1/responses/{response_id}/cancel — stops a queued or running background response."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from engine import cancel_response, tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.post("/responses/<response_id>/cancel")
@tracer.capture_method(capture_response=False)
def cancel(response_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    response = cancel_response(tenant, response_id)
    metrics.add_metric(name="ResponsesCancelled", unit=MetricUnit.Count, value=1)
    return response.model_dump(mode="json")


lambda_handler = rest_handler(app)
