"""GET /v1/responses/{response_id}/input_items — the response's input items, a cursor page at a time."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from engine import list_input_items, tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.get("/responses/<response_id>/input_items")
@tracer.capture_method(capture_response=False)
def list_items(
    response_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(min_length=1)] = None,
) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    page = list_input_items(tenant, response_id, limit=limit, order=order, after=after)
    metrics.add_metric(name="InputItemPagesListed", unit=MetricUnit.Count, value=1)
    return page.model_dump(mode="json")


lambda_handler = rest_handler(app)
