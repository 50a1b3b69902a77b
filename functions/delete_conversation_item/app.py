"""DELETE /v1/conversations/{conversation_id}/items/{item_id} — remove one item; answers the conversation."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.conversations import delete_item
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.delete("/conversations/<conversation_id>/items/<item_id>")
@tracer.capture_method(capture_response=False)
def delete(conversation_id: str, item_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    conversation = delete_item(tenant, conversation_id, item_id)
    metrics.add_metric(name="ConversationItemsDeleted", unit=MetricUnit.Count, value=1)
    return conversation.model_dump(mode="json")


lambda_handler = rest_handler(app)
