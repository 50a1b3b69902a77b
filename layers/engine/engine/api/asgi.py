"""The streaming function's edge (Starlette under Lambda Web Adapter): its routes (``build_app``), body parsing,
errors, SSE, tenant. The only module of the engine that imports Starlette."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import from_json, to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.api.limits import check_request_size
from engine.api.parsing import parse_create_params
from engine.api.tenancy import tenant_from_authorizer
from engine.auth import bearer_token, function_url_authenticator
from engine.coldstart import end_init
from engine.errors import APIError, error_envelope, from_validation_errors
from engine.limits import enforce_function_url_limits
from engine.models.request import ResponseCreateParams
from engine.observability import bind_request, logger, metrics
from engine.responses.background import check_streamable, replay, submit
from engine.responses.create import CreateRun, create_response, prepare_create, run_create
from engine.responses.failures import http_failure
from engine.responses.stored import get_response
from engine.streaming import SSE_DONE, sse_encode

__all__ = ["build_app", "create", "error_response", "request_tenant", "retrieve", "tenant_of"]

_OVERHEAD = "x-overhead-ms"
# hosted tools in the request that no provider here can run, and which the model was therefore not offered
_IGNORED = "x-ignored-tools"


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.to_envelope(), status_code=exc.status_code)


def _request_context(request: Request) -> dict[str, Any]:
    """The API Gateway request context, which Lambda Web Adapter forwards as a header."""
    raw = request.headers.get("x-amzn-request-context")
    return dict(from_json(raw)) if raw else {}


def tenant_of(request: Request) -> str:
    return tenant_from_authorizer(_request_context(request).get("authorizer"))


async def request_tenant(request: Request, context: dict[str, Any]) -> str:
    """The tenant the REST API's authorizer found; for a request that did not come through it (the function
    URL, which has no authorizer), the app checks the bearer key itself, with the same engine code. Lambda Web
    Adapter replaces any client-sent ``x-amzn-request-context`` with the real one, so it cannot be forged."""
    authorizer = context.get("authorizer")
    if isinstance(authorizer, dict) and authorizer.get("tenant"):
        return tenant_from_authorizer(authorizer)
    token = bearer_token(request.headers.get("authorization"))
    identity = await asyncio.to_thread(function_url_authenticator().authenticate, token)
    await asyncio.to_thread(enforce_function_url_limits, identity)  # the usage plan's limits, which the URL skips
    return identity.tenant


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
    check_request_size(len(body))
    return parse_create_params(body)


async def _sse(run: CreateRun) -> AsyncIterator[bytes]:
    events = run_create(run)
    try:
        async for event in events:
            yield sse_encode(event)
        yield SSE_DONE
    finally:
        # a client that went away closes this generator: close the run's now, so it stores what it has
        await events.aclose()
    _record(run)


def _sse_headers(overhead_ms: float | None = None) -> dict[str, str]:
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    if overhead_ms is not None:
        headers[_OVERHEAD] = f"{overhead_ms:.2f}"
    return headers


async def _replayed(tenant: str, response_id: str, starting_after: int) -> AsyncIterator[bytes]:
    async for data in replay(tenant, response_id, starting_after):
        kind = str(from_json(data)["type"])
        yield b"event: " + kind.encode() + b"\ndata: " + data.encode() + b"\n\n"
    yield SSE_DONE


def _unexpected() -> JSONResponse:
    logger.exception("unhandled error")
    return JSONResponse(
        error_envelope("The server had an error processing your request.", "server_error"), status_code=500
    )


async def create(request: Request) -> Response:
    """``POST /v1/responses``: JSON, or SSE when ``stream`` is true. Every 4xx is decided before streaming.
    A background response is queued and answered at once; streamed, its stored events are followed live."""
    started = time.perf_counter()
    context = _request_context(request)
    bind_request(context.get("requestId"))
    try:
        tenant = await request_tenant(request, context)
        run = await prepare_create(await _parse(request), tenant, started=started)
        if run.params.background:
            await submit(run)
    except APIError as exc:
        return error_response(exc)
    except Exception:
        return _unexpected()
    if run.params.background:
        if run.params.stream:
            return StreamingResponse(
                _replayed(tenant, run.response.id, -1), media_type="text/event-stream", headers=_sse_headers()
            )
        return Response(to_json(run.response.model_dump(mode="json")), media_type="application/json")
    ignored = {_IGNORED: ",".join(run.tools.ignored)} if run.tools.ignored else {}
    if run.params.stream:
        headers = {**_sse_headers(run.overhead_ms), **ignored}
        return StreamingResponse(_sse(run), media_type="text/event-stream", headers=headers)
    try:
        response = await create_response(run)
    except Exception:
        return _unexpected()
    _record(run)
    headers = {_OVERHEAD: f"{run.overhead_ms:.2f}", **ignored}
    if response.status == "failed":
        # as OpenAI: the error's HTTP status and envelope, so SDKs raise (and retry); the response stays stored
        status, envelope, extra = http_failure(response.error, response.id)
        return JSONResponse(envelope, status_code=status, headers={**headers, **extra})
    body = to_json(response.model_dump(mode="json"))
    return Response(body, media_type="application/json", headers=headers)


class RetrieveParams(BaseModel):
    """``GET /v1/responses/{id}`` query: ``stream`` replays a background response's events."""

    stream: bool = False
    starting_after: int | None = Field(default=None, ge=0)
    include_obfuscation: bool | None = None


async def retrieve(request: Request) -> Response:
    """``GET /v1/responses/{id}``: the stored response, or with ``stream=true`` a background response's events
    from ``starting_after`` on (replayed with their original sequence numbers, then live until it ends)."""
    context = _request_context(request)
    bind_request(context.get("requestId"))
    response_id = request.path_params["response_id"]
    try:
        tenant = await request_tenant(request, context)
        try:
            query = RetrieveParams.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise from_validation_errors(list(exc.errors())) from None
        if query.stream:
            await check_streamable(tenant, response_id)
            after = -1 if query.starting_after is None else query.starting_after
            return StreamingResponse(
                _replayed(tenant, response_id, after), media_type="text/event-stream", headers=_sse_headers()
            )
        response = await asyncio.to_thread(get_response, tenant, response_id)
    except APIError as exc:
        return error_response(exc)
    except Exception:
        return _unexpected()
    return Response(to_json(response.model_dump(mode="json")), media_type="application/json")


async def health(_: Request) -> Response:
    """Lambda Web Adapter's readiness check (``AWS_LWA_READINESS_CHECK_PATH``)."""
    return PlainTextResponse("ok")


def build_app() -> Starlette:
    """The streaming function's app. It is reachable through the REST API and the function URL, which may or may
    not keep the ``/v1`` stage prefix, so both forms are routed."""
    end_init()  # run.sh's uvicorn imports this app, then serves: init is over (engine.coldstart)
    return Starlette(
        routes=[
            Route("/v1/responses", create, methods=["POST"]),
            Route("/responses", create, methods=["POST"]),
            Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
            Route("/responses/{response_id}", retrieve, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
