"""POST /v1/responses/compact — the context summarized by the upstream into a sealed compaction item."""

import asyncio
from typing import Any

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.errors import InvalidRequestError
from engine.observability import tracer
from engine.responses.compact import compact_response

app = make_rest_resolver()


@app.post("/responses/compact")
@tracer.capture_method(capture_response=False)
def compact() -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    body = app.current_event.json_body if app.current_event.body else {}
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_type")
    return asyncio.run(compact_response(body, tenant))


lambda_handler = rest_handler(app)
