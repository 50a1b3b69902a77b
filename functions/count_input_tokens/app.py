"""POST /v1/responses/input_tokens — the token count of the context a create would send."""

import asyncio
from typing import Any

from engine import tenant_from_authorizer
from engine.api.parsing import parse_create_params
from engine.api.rest import make_rest_resolver, raw_body, rest_handler
from engine.observability import tracer
from engine.responses.tokens import INPUT_TOKENS_DEFAULTS, INPUT_TOKENS_OVERRIDES, count_input_tokens

app = make_rest_resolver()


@app.post("/responses/input_tokens")
@tracer.capture_method(capture_response=False)
def input_tokens() -> dict[str, Any]:
    tenant = tenant_from_authorizer(app.current_event.request_context.authorizer.raw_event)
    params = parse_create_params(
        raw_body(app.current_event), defaults=INPUT_TOKENS_DEFAULTS, overrides=INPUT_TOKENS_OVERRIDES
    )
    count = asyncio.run(count_input_tokens(params, tenant))
    return {"object": "response.input_tokens", "input_tokens": count}


lambda_handler = rest_handler(app)
