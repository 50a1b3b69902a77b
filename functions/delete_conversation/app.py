"""DELETE /v1/conversations/{conversation_id} — the conversation and its items."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.conversations import delete_conversation
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.delete("/conversations/<conversation_id>")
@tracer.capture_method(capture_response=False)
def delete(conversation_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    deleted = delete_conversation(tenant, conversation_id)
    metrics.add_metric(name="ConversationsDeleted", unit=MetricUnit.Count, value=1)
    return deleted.model_dump(mode="json")


lambda_handler = rest_handler(app)
