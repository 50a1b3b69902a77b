"""GET /v1/openapi.json — this API's OpenAPI 3.1 document, generated from the engine's pydantic models."""

from typing import Any

from engine.api.openapi import openapi_document
from engine.api.rest import make_rest_resolver, rest_handler
from engine.observability import tracer

app = make_rest_resolver()


@app.get("/openapi.json")
@tracer.capture_method(capture_response=False)
def document() -> dict[str, Any]:
    return openapi_document(f"/{app.current_event.request_context.stage}")


lambda_handler = rest_handler(app)
