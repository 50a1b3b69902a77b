"""GET /v1/responses — the tenant's stored responses, newest first (``limit``, ``after``, ``before``)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from engine import list_responses, tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.get("/responses")
@tracer.capture_method(capture_response=False)
def list_all(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(min_length=1)] = None,
    before: Annotated[str | None, Query(min_length=1)] = None,
) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    page = list_responses(tenant, limit=limit, after=after, before=before)
    metrics.add_metric(name="ResponsePagesListed", unit=MetricUnit.Count, value=1)
    return page.model_dump(mode="json")


lambda_handler = rest_handler(app)
