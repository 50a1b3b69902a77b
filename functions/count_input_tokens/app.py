"""POST /v1/responses/input_tokens — the token count of the context a create would send."""

import asyncio
from typing import Any

from engine import tenant_from_authorizer
from engine.api.rest import make_rest_resolver, rest_handler
from engine.errors import InvalidRequestError
from engine.observability import tracer
from engine.responses.tokens import count_input_tokens

app = make_rest_resolver()


@app.post("/responses/input_tokens")
@tracer.capture_method(capture_response=False)
def input_tokens() -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    body = app.current_event.json_body if app.current_event.body else {}
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_type")
    count = asyncio.run(count_input_tokens(body, tenant))
    return {"object": "response.input_tokens", "input_tokens": count}


lambda_handler = rest_handler(app)
