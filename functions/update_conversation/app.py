"""POST /v1/conversations/{conversation_id} — replace the conversation's metadata."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.conversations import update_conversation
from engine.models.conversations import ConversationUpdateParams
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.post("/conversations/<conversation_id>")
@tracer.capture_method(capture_response=False)
def update(conversation_id: str, body: Annotated[ConversationUpdateParams, Body()]) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    conversation = update_conversation(tenant, conversation_id, body.metadata)
    metrics.add_metric(name="ConversationsUpdated", unit=MetricUnit.Count, value=1)
    return conversation.model_dump(mode="json")


lambda_handler = rest_handler(app)
