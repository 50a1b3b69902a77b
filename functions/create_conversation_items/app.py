"""POST /v1/conversations/{conversation_id}/items — add up to 20 items at the end; answers the added items."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.conversations import add_items
from engine.models.conversations import ConversationItemsCreateParams
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.post("/conversations/<conversation_id>/items")
@tracer.capture_method(capture_response=False)
def create_items(conversation_id: str, body: Annotated[ConversationItemsCreateParams, Body()]) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    added = add_items(tenant, conversation_id, body.items)
    metrics.add_metric(name="ConversationItemsAdded", unit=MetricUnit.Count, value=len(added.data))
    return added.model_dump(mode="json")


lambda_handler = rest_handler(app)
