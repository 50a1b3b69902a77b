"""HTTP edges shared by the handlers: the Powertools resolver with OpenAI-shaped errors, and tenant lookup.

Every error leaves through ``APIError.to_envelope()`` here (buffered routes) or in ``engine.api.asgi``
(the streaming app), so a client only ever sees ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic_core import to_json

from engine.api.limits import check_request_size
from engine.api.parsing import invalid_json, parse_json_object
from engine.api.tenancy import tenant_from_authorizer
from engine.errors import APIError, error_envelope, from_validation_errors
from engine.observability import inject_invocation_context, logger, metrics, tracer

__all__ = ["json_response", "make_rest_resolver", "raw_body", "rest_handler", "tenant_from_authorizer"]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=to_json(body).decode(), headers=headers
    )


def make_rest_resolver() -> APIGatewayRestResolver:
    """An ``APIGatewayRestResolver`` with request validation whose every error is OpenAI-shaped."""
    # Bodies go through the engine's one JSON parser, whose failures are OpenAI's 400s (see engine.api.parsing).
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_object)

    @app.exception_handler(APIError)
    def _api_error(exc: APIError) -> Response[str]:
        return json_response(exc.status_code, exc.to_envelope())

    @app.exception_handler(RequestValidationError)
    def _validation_error(exc: RequestValidationError) -> Response[str]:
        err = from_validation_errors(list(exc.errors()))
        return json_response(err.status_code, err.to_envelope())

    @app.exception_handler(RouteNotFoundError)
    def _no_route(exc: RouteNotFoundError) -> Response[str]:
        path = app.current_event.path
        return json_response(
            404, error_envelope(f"Invalid URL ({app.current_event.http_method} {path})", "invalid_request_error")
        )

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response[str]:
        return json_response(exc.status_code, error_envelope(str(exc.msg), "invalid_request_error"))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return json_response(500, error_envelope("The server had an error processing your request.", "server_error"))

    return app


def raw_body(event: BaseProxyEvent) -> str | bytes | None:
    """The body as the client sent it: bytes where API Gateway base64-encoded it."""
    body = event.body
    if body and event.is_base64_encoded:
        return base64.b64decode(body)
    return body


def _as_json_request(event: dict[str, Any]) -> dict[str, Any] | None:
    """Every body is read as JSON whatever content type it declares, as the streaming function reads it (and as
    OpenAI does): Powertools would otherwise parse forms or refuse other types with a 500. A base64 body (API
    Gateway's encoding of a binary one) is decoded here; one that is not UTF-8 is answered 400 at once (the
    returned proxy result)."""
    for key in ("headers", "multiValueHeaders"):
        headers = event.get(key) or {}
        for name in [n for n in headers if n.lower() == "content-type"]:
            headers[name] = ["application/json"] if key == "multiValueHeaders" else "application/json"
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            event["body"] = base64.b64decode(event["body"], validate=True).decode("utf-8")
            event["isBase64Encoded"] = False
        except (binascii.Error, UnicodeDecodeError):
            err = invalid_json("the body is not UTF-8")
            return {
                "statusCode": err.status_code,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": to_json(err.to_envelope()).decode(),
                "isBase64Encoded": False,
            }
    return None


def rest_handler(
    app: APIGatewayRestResolver, *, json_bodies: bool = True
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The ``lambda_handler`` of a buffered function: the resolver under Powertools' Logger (correlation id
    from API Gateway), Tracer and Metrics, in the cookbook's order. ``json_bodies``: every body is read as JSON
    (off for a function that takes uploads, which reads its own multipart body)."""

    @inject_invocation_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            check_request_size(len(event.get("body") or ""))
        except APIError as exc:
            # before the resolver: a proxy answer of our own (the body is never parsed)
            return {
                "statusCode": exc.status_code,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": to_json(exc.to_envelope()).decode(),
                "isBase64Encoded": False,
            }
        refused = _as_json_request(event) if json_bodies else None
        return refused if refused is not None else app.resolve(event, context)

    return lambda_handler
