"""The OpenAPI document (``GET /v1/openapi.json``): valid OpenAPI 3.1, exactly the template's routes, its
request schemas the models the handlers validate with, and served by its function from the sample event."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from engine.api.openapi import openapi_document
from local.gateway import LambdaContext, _load_module
from local.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def test_the_document_is_valid_openapi_3_1():
    validate(openapi_document())  # raises on any violation of the OpenAPI 3.1 schema


def test_the_paths_are_exactly_the_templates_routes():
    document = openapi_document()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routes = {(route.method, route.path) for route in load_template().routes}
    assert documented == routes


def test_request_bodies_carry_the_models_constraints():
    schemas = openapi_document()["components"]["schemas"]
    create = schemas["ResponseCreateParams"]
    assert create["required"] == ["model"]
    assert create["properties"]["temperature"]["anyOf"][0] == {"maximum": 2.0, "minimum": 0.0, "type": "number"}
    tools = create["properties"]["tools"]["anyOf"][0]["items"]["oneOf"]
    assert {"#/components/schemas/FunctionToolParam", "#/components/schemas/McpToolEntryParam"} <= {
        t["$ref"] for t in tools
    }
    assert schemas["ConversationItemsCreateParams"]["properties"]["items"]["maxItems"] == 20


def test_the_function_serves_it_with_its_sample_event(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    spec = load_template().functions["OpenApiFunction"]
    handler = _load_module(spec, "app").lambda_handler
    event = json.loads((ROOT / "events" / "openapi.json").read_text())
    result = handler(event, LambdaContext(function_name="OpenApiFunction", aws_request_id="r-1"))
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["servers"] == [{"url": "/v1"}] and "/responses" in body["paths"]
