"""POST /v1/conversations — a new conversation, optionally with up to 20 items and metadata."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.conversations import create_conversation
from engine.models.conversations import ConversationCreateParams
from engine.observability import metrics, tracer

app = make_rest_resolver()


@app.post("/conversations")
@tracer.capture_method(capture_response=False)
def create(body: Annotated[ConversationCreateParams, Body()]) -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    conversation = create_conversation(tenant, body.items, body.metadata)
    metrics.add_metric(name="ConversationsCreated", unit=MetricUnit.Count, value=1)
    return conversation.model_dump(mode="json")


lambda_handler = rest_handler(app)
