"""DELETE /v1/responses/{response_id} — removes the response and every stored item of it."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from engine import delete_response, tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.delete("/responses/<response_id>")
@tracer.capture_method(capture_response=False)
def delete(response_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    deleted = delete_response(tenant, response_id)
    metrics.add_metric(name="ResponsesDeleted", unit=MetricUnit.Count, value=1)
    return deleted.model_dump(mode="json")


lambda_handler = rest_handler(app)
