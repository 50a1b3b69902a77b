"""The streaming function's plumbing (Starlette under Lambda Web Adapter): body parsing, errors, SSE, tenant."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError
from pydantic_core import from_json, to_json
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from .create import CreateRun, create_response, prepare_create, run_create
from .errors import APIError, InvalidRequestError, error_envelope, from_validation_errors
from .models.request import ResponseCreateParams
from .observability import logger, metrics
from .streaming import ResponseStream, sse_encode
from .tenancy import tenant_from_authorizer

__all__ = ["create", "error_response", "tenant_of"]

_OVERHEAD = "x-overhead-ms"


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.to_envelope(), status_code=exc.status_code)


def _request_context(request: Request) -> dict[str, Any]:
    """The API Gateway request context, which Lambda Web Adapter forwards as a header."""
    raw = request.headers.get("x-amzn-request-context")
    return dict(from_json(raw)) if raw else {}


def tenant_of(request: Request) -> str:
    return tenant_from_authorizer(_request_context(request).get("authorizer"))


def _record(run: CreateRun) -> None:
    """One metric per finished response (no Lambda handler wraps an ASGI app, so flush here)."""
    try:
        metrics.add_metric(name=f"Responses{run.response.status.title()}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="OverheadMs", unit=MetricUnit.Milliseconds, value=round(run.overhead_ms, 3))
        metrics.flush_metrics()
    except Exception:  # metrics must never break an answer already sent
        logger.exception("could not publish metrics")


async def _parse(request: Request) -> ResponseCreateParams:
    body = await request.body()
    try:
        return ResponseCreateParams.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            raise InvalidRequestError(
                "We could not parse the JSON body of your request. The body must be a JSON object.",
                code="invalid_json",
            ) from None
        if errors and errors[0].get("type") == "model_type":
            raise InvalidRequestError("The request body must be a JSON object.", code="invalid_type") from None
        raise from_validation_errors(list(errors)) from None


async def _sse(run: CreateRun) -> AsyncIterator[bytes]:
    async for event in run_create(run):
        yield sse_encode(event)
    yield ResponseStream.DONE
    _record(run)


async def create(request: Request) -> Response:
    """``POST /v1/responses``: JSON, or SSE when ``stream`` is true. Every 4xx is decided before streaming."""
    started = time.perf_counter()
    context = _request_context(request)
    logger.set_correlation_id(context.get("requestId"))
    try:
        run = await prepare_create(
            await _parse(request), tenant_from_authorizer(context.get("authorizer")), started=started
        )
    except APIError as exc:
        return error_response(exc)
    except Exception:
        logger.exception("unhandled error preparing a response")
        return JSONResponse(
            error_envelope("The server had an error processing your request.", "server_error"), status_code=500
        )
    if run.params.stream:
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no", _OVERHEAD: f"{run.overhead_ms:.2f}"}
        return StreamingResponse(_sse(run), media_type="text/event-stream", headers=headers)
    response = await create_response(run)
    _record(run)
    body = to_json(response.model_dump(mode="json"))
    return Response(body, media_type="application/json", headers={_OVERHEAD: f"{run.overhead_ms:.2f}"})
