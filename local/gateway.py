"""API Gateway (REST, v1 proxy) emulation: the routes of ``template.yaml`` in front of the real handlers.

Buffered routes get the same v1 proxy event API Gateway builds and call the function's ``lambda_handler``;
streaming routes (``ResponseTransferMode: RESPONSE_STREAM``) are forwarded to the function's ASGI app as
Lambda Web Adapter would forward them, with the request context in ``x-amzn-request-context``, and the body
chunks pass through as the app sends them.

Before either, as API Gateway does: the API's Lambda REQUEST authorizer (the template's own handler) is called
with the REQUEST authorizer event, its answer cached per identity-source value for ``ReauthorizeEvery``
(``AUTH_CACHE_SECONDS`` overrides), its policy evaluated against the method ARN, and its context passed on as
``requestContext.authorizer``. A missing identity source is a 401 without a call. With ``ApiKeyRequired`` and
``ApiKeySourceType: AUTHORIZER`` the returned ``usageIdentifierKey`` is throttled by a token bucket of the usage
plan's rate and burst (``LOCAL_RATE_LIMIT`` / ``LOCAL_BURST_LIMIT`` override). Every error the gateway itself
answers is rendered from the template's ``GatewayResponses``. With ``AUTH_MODE=off`` (``make serve`` without
``API_KEYS``) the authorizer still runs, but no header is required and nothing is throttled.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, quote

from .template import FunctionSpec, GatewayResponseSpec, Route, StackTemplate

__all__ = ["Gateway", "LambdaContext", "TokenBucket", "build_authorizer_event", "build_proxy_event", "policy_allows"]

ACCOUNT = "123456789012"
REGION = "us-east-1"
API_ID = "local"
log = logging.getLogger("local.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class LambdaContext:
    """The attributes Powertools reads from Lambda's context object."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _load_module(spec: FunctionSpec, module: str) -> ModuleType:
    """Import ``<CodeUri>/<module>.py`` under a name unique to the function, as separate Lambdas would."""
    name = f"_lambda_{spec.logical_id}_{module.replace('.', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    path = spec.code_dir / (module.replace(".", "/") + ".py")
    loader_spec = importlib.util.spec_from_file_location(name, path)
    assert loader_spec is not None and loader_spec.loader is not None
    loaded = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = loaded
    loader_spec.loader.exec_module(loaded)
    return loaded


def build_proxy_event(
    *,
    route: Route,
    stage: str,
    method: str,
    path: str,
    path_params: dict[str, str],
    headers: list[tuple[str, str]],
    query: str,
    body: bytes,
    source_ip: str,
    authorizer: dict[str, Any] | None = None,
    request_id: str | None = None,
    binary_media_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The REST API v1 proxy event for one request (``path`` without the stage, as API Gateway sends it). A body
    whose Content-Type is one of the API's ``BinaryMediaTypes`` arrives base64-encoded, as API Gateway sends it."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for key, value in headers:
        single_headers[key] = value
        multi_headers.setdefault(key, []).append(value)
    pairs = parse_qsl(query, keep_blank_values=True)
    single_query = {k: v for k, v in pairs} or None
    multi_query: dict[str, list[str]] = {}
    for key, value in pairs:
        multi_query.setdefault(key, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "").split(";")[0].strip().lower()
    binary = any(_media_match(pattern, content_type) for pattern in binary_media_types)
    try:
        if binary:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "a binary media type")
        text_body: str | None = body.decode("utf-8") if body else None
        is_b64 = False
    except UnicodeDecodeError:
        text_body, is_b64 = base64.b64encode(body).decode(), True
    now = time.time()
    context: dict[str, Any] = {
        "resourceId": "local",
        "resourcePath": route.path,
        "httpMethod": method,
        "extendedRequestId": uuid.uuid4().hex,
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "path": f"/{stage}{path}",
        "accountId": ACCOUNT,
        "protocol": "HTTP/1.1",
        "stage": stage,
        "domainPrefix": "local",
        "requestTimeEpoch": int(now * 1000),
        "requestId": request_id or str(uuid.uuid4()),
        "identity": {"sourceIp": source_ip, "userAgent": single_headers.get("user-agent", "")},
        "domainName": single_headers.get("host", "127.0.0.1"),
        "apiId": API_ID,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": context,
        "body": text_body,
        "isBase64Encoded": is_b64,
    }


def _media_match(pattern: str, content_type: str) -> bool:
    """``BinaryMediaTypes`` entries: exact types or wildcards (``*/*``, ``image/*``)."""
    kind, _, sub = pattern.lower().partition("/")
    have_kind, _, have_sub = content_type.partition("/")
    return bool(content_type) and kind in ("*", have_kind) and sub in ("*", have_sub)


def method_arn(stage: str, method: str, path: str) -> str:
    """``arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`` with the request's own path."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{stage}/{method}/{path.lstrip('/')}"


def build_authorizer_event(*, stage: str, **request: Any) -> dict[str, Any]:
    """The REQUEST authorizer event of a REST API: the proxy event's request fields (no body), ``type`` and
    ``methodArn``. Takes :func:`build_proxy_event`'s keyword arguments (``body`` unused)."""
    event = build_proxy_event(stage=stage, **{"body": b"", **request})
    for key in ("body", "isBase64Encoded"):
        event.pop(key)
    return {"type": "REQUEST", "methodArn": method_arn(stage, event["httpMethod"], event["path"]), **event}


def _arn_pattern(resource: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(resource).replace(r"\*", ".*").replace(r"\?", ".") + "$")


def policy_allows(policy: Any, arn: str) -> bool:
    """IAM evaluation of an authorizer's policy for ``execute-api:Invoke`` on ``arn``: an explicit Deny wins,
    else an Allow is needed."""
    allowed = False
    statements = (policy or {}).get("Statement") or []
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if not any(_arn_pattern(a).match("execute-api:Invoke") for a in actions):
            continue
        resources = statement.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_arn_pattern(r).match(arn) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


class TokenBucket:
    """API Gateway's throttle: ``burst`` tokens, refilled at ``rate`` a second; one per request."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# API Gateway's own status, message and x-amzn-ErrorType per response type (before GatewayResponses apply).
_GATEWAY_ERRORS: dict[str, tuple[int, str, str]] = {
    "UNAUTHORIZED": (401, "Unauthorized", "UnauthorizedException"),
    "ACCESS_DENIED": (
        403,
        "User is not authorized to access this resource with an explicit deny",
        "AccessDeniedException",
    ),
    "INVALID_API_KEY": (403, "Forbidden", "ForbiddenException"),
    "THROTTLED": (429, "Too Many Requests", "TooManyRequestsException"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "MissingAuthenticationTokenException"),
    "AUTHORIZER_FAILURE": (500, "Internal server error", "AuthorizerFailureException"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "Internal server error", "AuthorizerConfigurationException"),
}
_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z][A-Za-z0-9_.]*[A-Za-z0-9_])")


def _render(template: str, variables: dict[str, str]) -> str:
    """A gateway response mapping template: ``$context.<name>`` variables only (the templates here use no VTL)."""
    return _CONTEXT_VARIABLE.sub(lambda m: variables.get(m.group(1), ""), template)


def _raw_path(scope: Scope) -> str:
    """The path as the client sent it (percent-encoded), as API Gateway's ``$context.path`` holds it: the decoded
    one could put a quote or a backslash into a gateway response's JSON. What a client sent unencoded (uvicorn
    passes a few such bytes through) is encoded here, so the rendered body is JSON for any path."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return quote(raw.decode("latin-1"), safe="/%:@!$&'()*+,;=-._~")


class _Denied(Exception):
    """The gateway answers the request itself with this gateway response type."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """An ASGI app that routes like the template's REST API and invokes the functions behind it."""

    def __init__(self, template: StackTemplate) -> None:
        self.template = template
        self.prefix = f"/{template.stage}"
        self._handlers: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {}
        self._apps: dict[str, ASGIApp] = {}
        # One Lambda execution environment handles one invocation at a time; a lock per function keeps
        # that true here (Powertools resolvers hold the current event on the app object).
        self._locks: dict[str, threading.Lock] = {}
        api = template.api
        self.auth_mode = os.environ.get("AUTH_MODE") or "keys"
        self._authorizer: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
        if api.authorizer is not None:
            fn = api.authorizer.function
            module, attr = fn.handler.rsplit(".", 1)
            self._authorizer = getattr(_load_module(fn, module), attr)
            self._locks[fn.logical_id] = threading.Lock()
        override = os.environ.get("AUTH_CACHE_SECONDS")
        self.auth_ttl = float(override) if override else float(api.authorizer.ttl_seconds if api.authorizer else 0)
        self._auth_cache: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}
        plan = api.usage_plan
        self.rate_limit = float(os.environ.get("LOCAL_RATE_LIMIT") or (plan.rate_limit if plan else 10_000))
        self.burst_limit = int(os.environ.get("LOCAL_BURST_LIMIT") or (plan.burst_limit if plan else 5_000))
        self._buckets: dict[str, TokenBucket] = {}
        from .websocket_gateway import WebSocketGateway  # it builds on this module

        self.websockets = WebSocketGateway(template, self.auth_mode)
        for route in template.routes:
            fn = route.function
            if fn.streams:
                module, attr = fn.asgi_target()
                self._apps[fn.logical_id] = getattr(_load_module(fn, module), attr)
            else:
                module, attr = fn.handler.rsplit(".", 1)
                self._handlers[fn.logical_id] = getattr(_load_module(fn, module), attr)
                self._locks[fn.logical_id] = threading.Lock()

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.template.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "websocket":
            await self.websockets.serve(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if self.websockets.handles(path):
            await self.websockets.http(scope, receive, send)
            return
        if path == "/_local/health":
            # Tests reach the stack's moto (and its table) through these.
            health = {
                "status": "ok",
                "auth_mode": self.auth_mode,
                "aws_endpoint_url": os.environ.get("AWS_ENDPOINT_URL"),
                "table_name": os.environ.get("TABLE_NAME"),
            }
            await _send_json(send, 200, health)
            return
        request_id = str(uuid.uuid4())
        found = self._route(scope["method"], path[len(self.prefix) :]) if path.startswith(self.prefix + "/") else None
        if found is None:
            await self._gateway_response(send, "MISSING_AUTHENTICATION_TOKEN", scope, request_id)
            return
        route, params = found
        try:
            authorizer = await self._authorize(route, params, scope, request_id)
        except _Denied as denied:
            await self._gateway_response(send, denied.kind, scope, request_id)
            return
        if route.streaming:
            await self._forward(route, params, scope, receive, send, authorizer, request_id)
        else:
            await self._invoke(route, params, scope, receive, send, authorizer, request_id)

    # --- the authorizer and the usage plan ---------------------------------------------------------------------

    async def _authorize(
        self, route: Route, params: dict[str, str], scope: Scope, request_id: str
    ) -> dict[str, Any] | None:
        """The ``requestContext.authorizer`` of an allowed request; :class:`_Denied` otherwise."""
        spec = self.template.api.authorizer
        if spec is None or self._authorizer is None:
            return None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lowered = {k.lower(): v for k, v in headers}
        identity = tuple(lowered.get(name.lower(), "") for name in spec.identity_headers)
        if self.auth_mode != "off" and not all(identity):
            raise _Denied("UNAUTHORIZED")
        now = time.monotonic()
        cached = self._auth_cache.get(identity)
        started = time.perf_counter()
        if cached is not None and cached[0] > now:
            result = cached[1]
        else:
            event = build_authorizer_event(
                stage=self.template.stage,
                route=route,
                method=scope["method"],
                path=scope["path"][len(self.prefix) :],
                path_params=params,
                headers=headers,
                query=scope.get("query_string", b"").decode("latin-1"),
                source_ip=(scope.get("client") or ("127.0.0.1", 0))[0],
                request_id=request_id,
            )
            fn = spec.function
            context = LambdaContext(function_name=fn.logical_id, aws_request_id=request_id)
            authorizer = self._authorizer

            def call() -> dict[str, Any]:
                with self._locks[fn.logical_id]:
                    return authorizer(event, context)

            try:
                result = await asyncio.to_thread(call)
            except Exception as exc:
                if str(exc) == "Unauthorized":  # the documented way for an authorizer to answer 401
                    raise _Denied("UNAUTHORIZED") from None
                log.exception("authorizer failed")
                raise _Denied("AUTHORIZER_FAILURE") from None
            if not isinstance(result, dict) or "policyDocument" not in result or "principalId" not in result:
                raise _Denied("AUTHORIZER_CONFIGURATION_ERROR")
            if self.auth_ttl > 0:
                if len(self._auth_cache) > 10_000:  # a local stack fed many distinct keys: start over
                    self._auth_cache.clear()
                self._auth_cache[identity] = (now + self.auth_ttl, result)
        arn = method_arn(self.template.stage, scope["method"], scope["path"][len(self.prefix) :])
        if not policy_allows(result.get("policyDocument"), arn):
            raise _Denied("ACCESS_DENIED")
        api = self.template.api
        if self.auth_mode != "off" and api.api_key_required and api.api_key_source == "AUTHORIZER":
            usage_key = result.get("usageIdentifierKey")
            if not usage_key:
                raise _Denied("INVALID_API_KEY")
            bucket = self._buckets.get(usage_key)
            if bucket is None:
                bucket = self._buckets[usage_key] = TokenBucket(self.rate_limit, self.burst_limit)
            if not bucket.take():
                raise _Denied("THROTTLED")
        # As API Gateway passes it on: the context's values as strings, plus principalId and integrationLatency.
        out: dict[str, Any] = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in (result.get("context") or {}).items()
        }
        out["principalId"] = str(result["principalId"])
        out["integrationLatency"] = round((time.perf_counter() - started) * 1000)
        return out

    async def _gateway_response(self, send: Send, kind: str, scope: Scope, request_id: str) -> None:
        """The error API Gateway itself answers, shaped by the template's ``GatewayResponses``."""
        status, message, error_type = _GATEWAY_ERRORS.get(kind, (500, "Internal server error", "InternalServerError"))
        responses = self.template.api.gateway_responses
        spec = responses.get(kind) or responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
        spec = spec or GatewayResponseSpec(status=None, headers={}, template=None)
        variables = {
            "httpMethod": scope["method"],
            "path": _raw_path(scope),
            "requestId": request_id,
            "error.message": message,
            "error.messageString": json.dumps(message),
            "error.responseType": kind,
        }
        body = (_render(spec.template, variables) if spec.template else json.dumps({"message": message})).encode()
        headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", error_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in spec.headers.items()]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": spec.status or status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _request_context(
        self, route: Route, scope: Scope, authorizer: dict[str, Any] | None, request_id: str
    ) -> dict[str, Any]:
        context: dict[str, Any] = {
            "resourcePath": route.path,
            "stage": self.template.stage,
            "httpMethod": scope["method"],
            "path": scope["path"],
            "requestId": request_id,
            "apiId": API_ID,
            "accountId": ACCOUNT,
            "identity": {"sourceIp": (scope.get("client") or ("127.0.0.1", 0))[0]},
        }
        if authorizer is not None:
            context["authorizer"] = authorizer
        return context

    async def _forward(
        self,
        route: Route,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        authorizer: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        """As Lambda Web Adapter does: same path and headers, plus the request context header (replacing any the
        client sent, as LWA's ``HeaderMap::insert`` does)."""
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"x-amzn-request-context", b"x-amzn-lambda-context")
        ]
        context = self._request_context(route, scope, authorizer, request_id or str(uuid.uuid4()))
        headers.append((b"x-amzn-request-context", json.dumps(context).encode()))
        forwarded = dict(scope, headers=headers)
        await self._apps[route.function.logical_id](forwarded, receive, send)

    async def _invoke(
        self,
        route: Route,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        authorizer: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        body = await _read_body(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        event = build_proxy_event(
            route=route,
            stage=self.template.stage,
            method=scope["method"],
            path=scope["path"][len(self.prefix) :],
            path_params=params,
            headers=headers,
            query=scope.get("query_string", b"").decode("latin-1"),
            body=body,
            source_ip=(scope.get("client") or ("127.0.0.1", 0))[0],
            authorizer=authorizer,
            request_id=request_id,
            binary_media_types=self.template.api.binary_media_types,
        )
        fn = route.function
        context = LambdaContext(function_name=fn.logical_id, aws_request_id=event["requestContext"]["requestId"])

        def call() -> dict[str, Any]:
            with self._locks[fn.logical_id]:
                return self._handlers[fn.logical_id](event, context)

        result = await asyncio.to_thread(call)
        await self._send_result(result, send)

    @staticmethod
    async def _send_result(result: dict[str, Any], send: Send) -> None:
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        headers: list[tuple[bytes, bytes]] = []
        for key, value in (result.get("headers") or {}).items():
            headers.append((key.lower().encode(), str(value).encode()))
        for key, values in (result.get("multiValueHeaders") or {}).items():
            if key in (result.get("headers") or {}):
                continue
            headers.extend((key.lower().encode(), str(v).encode()) for v in values)
        headers = [h for h in headers if h[0] != b"content-length"] + [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": int(result.get("statusCode", 200)), "headers": headers})
        await send({"type": "http.response.body", "body": body})
