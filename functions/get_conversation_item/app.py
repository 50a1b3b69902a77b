"""GET /v1/conversations/{conversation_id}/items/{item_id} — one item of the conversation."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.conversations import get_item
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.get("/conversations/<conversation_id>/items/<item_id>")
@tracer.capture_method(capture_response=False)
def get(conversation_id: str, item_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    item = get_item(tenant, conversation_id, item_id)
    metrics.add_metric(name="ConversationItemsRetrieved", unit=MetricUnit.Count, value=1)
    return item


lambda_handler = rest_handler(app)
