"""API Gateway (REST, v1 proxy) emulation: the routes of ``template.yaml`` in front of the real handlers.

Buffered routes get the same v1 proxy event API Gateway builds and call the function's ``lambda_handler``;
streaming routes (``ResponseTransferMode: RESPONSE_STREAM``) are forwarded to the function's ASGI app as
Lambda Web Adapter would forward them, with the request context in ``x-amzn-request-context``, and the body
chunks pass through as the app sends them.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

from .template import FunctionSpec, Route, StackTemplate

__all__ = ["Gateway", "LambdaContext", "build_proxy_event"]

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
) -> dict[str, Any]:
    """The REST API v1 proxy event for one request (``path`` without the stage, as API Gateway sends it)."""
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
    try:
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
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "stage": stage,
        "domainPrefix": "local",
        "requestTimeEpoch": int(now * 1000),
        "requestId": str(uuid.uuid4()),
        "identity": {"sourceIp": source_ip, "userAgent": single_headers.get("user-agent", "")},
        "domainName": single_headers.get("host", "127.0.0.1"),
        "apiId": "local",
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
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/_local/health":
            await _send_json(send, 200, {"status": "ok"})
            return
        found = self._route(scope["method"], path[len(self.prefix) :]) if path.startswith(self.prefix + "/") else None
        if found is None:
            message = f"Invalid URL ({scope['method']} {path})"
            await _send_json(
                send, 404, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
            )
            return
        route, params = found
        if route.streaming:
            await self._forward(route, params, scope, receive, send)
        else:
            await self._invoke(route, params, scope, receive, send)

    def _request_context(self, route: Route, scope: Scope) -> dict[str, Any]:
        return {
            "resourcePath": route.path,
            "stage": self.template.stage,
            "httpMethod": scope["method"],
            "path": scope["path"],
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": (scope.get("client") or ("127.0.0.1", 0))[0]},
        }

    async def _forward(self, route: Route, params: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
        """As Lambda Web Adapter does: same path and headers, plus the request context header."""
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"x-amzn-request-context", b"x-amzn-lambda-context")
        ]
        headers.append((b"x-amzn-request-context", json.dumps(self._request_context(route, scope)).encode()))
        forwarded = dict(scope, headers=headers)
        await self._apps[route.function.logical_id](forwarded, receive, send)

    async def _invoke(self, route: Route, params: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
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
