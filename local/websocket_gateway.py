"""API Gateway WebSocket API emulation: the template's ``AWS::ApiGatewayV2`` WebSocket API in front of its functions,
its management API, and Lambda's Invoke API for the functions those call.

- The upgrade, at ``/{REST stage}/{WebSocket stage}`` (``ws://127.0.0.1:$PORT/v1/responses``, where a custom domain
  would map both APIs on one host): the ``$connect`` route's REQUEST authorizer (the template's own function, with
  the WebSocket authorizer event; a missing identity header is a 401 without a call, a Deny a 403), then the
  ``$connect`` function; a non-200 answer refuses the upgrade with that status, as API Gateway does.
- Each message → the ``$default`` function with the MESSAGE event (a message over 128 KB closes the socket with
  1009, as API Gateway does); the client leaving → ``$disconnect``.
- ``/_local/websocket/@connections/{id}`` is the management API (``POST`` = PostToConnection, ``DELETE``,
  ``GET``; 410 ``GoneException`` for a closed connection): the engine's boto3 client is pointed at it with
  ``WEBSOCKET_ENDPOINT``, so the handlers are the code AWS runs.
- ``/_local/lambda/2015-03-31/functions/{name}/invocations`` is Lambda's Invoke (``LAMBDA_ENDPOINT_URL``): an
  ``Event`` invocation is answered 202 and run on a thread of its own, as concurrent Lambda environments would.

An upgrade to any other path is refused with a 404 in OpenAI's error envelope.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .gateway import ACCOUNT, API_ID, REGION, LambdaContext, Receive, Scope, Send, _load_module, policy_allows
from .template import FunctionSpec, StackTemplate

__all__ = ["WebSocketGateway", "local_websocket_environment"]

log = logging.getLogger("local.websocket")
Handler = Callable[[dict[str, Any], Any], Any]
# API Gateway's WebSocket message limit.
MAX_MESSAGE_BYTES = 128 * 1024
MANAGEMENT_PREFIX = "/_local/websocket"
LAMBDA_PREFIX = "/_local/lambda"


def local_websocket_environment(template: StackTemplate, base_url: str) -> dict[str, str]:
    """The WebSocket functions' variables with local values: the management API and Lambda's Invoke API are this
    stack's own endpoints, a function reference is the function's local name (its logical id)."""
    if template.websocket is None:
        return {}
    env = {"WEBSOCKET_ENDPOINT": base_url + MANAGEMENT_PREFIX, "LAMBDA_ENDPOINT_URL": base_url + LAMBDA_PREFIX}
    for spec in template.functions.values():
        for key, value in spec.environment.items():
            if isinstance(value, dict) and value.get("Ref") in template.functions:
                env[key] = str(value["Ref"])
    return env


def _handler(spec: FunctionSpec) -> Handler:
    module, attr = spec.handler.rsplit(".", 1)
    handler: Handler = getattr(_load_module(spec, module), attr)
    return handler


async def _refuse(send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer the upgrade request with an HTTP error (ASGI's websocket.http.response extension)."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": data})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class WebSocketGateway:
    """The template's WebSocket API (see the module docstring); ``None`` routes when the template has none."""

    def __init__(self, template: StackTemplate, auth_mode: str) -> None:
        self.spec = template.websocket
        self.auth_mode = auth_mode
        self.path = f"/{template.stage}/{self.spec.stage}" if self.spec else None
        self._routes = {key: _handler(fn) for key, fn in (self.spec.routes if self.spec else {}).items()}
        self._authorizer = _handler(self.spec.authorizer) if self.spec and self.spec.authorizer else None
        self._functions = template.functions
        self._open: dict[str, tuple[Send, dict[str, Any]]] = {}
        # Asynchronous invocations: each on a thread of its own, like concurrent execution environments.
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda-event")
        self._pending: set[asyncio.Future[Any]] = set()

    def handles(self, path: str) -> bool:
        return path.startswith((MANAGEMENT_PREFIX + "/", LAMBDA_PREFIX + "/"))

    # --- the WebSocket API ---------------------------------------------------------------------------------------

    def _event(self, route_key: str, event_type: str, context: dict[str, Any], **extra: Any) -> dict[str, Any]:
        now = time.time()
        request_context = {
            **context,
            "routeKey": route_key,
            "eventType": event_type,
            "messageDirection": "IN",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(now * 1000),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        }
        if event_type == "MESSAGE":
            request_context["messageId"] = base64.b64encode(secrets.token_bytes(12)).decode()
        return {"requestContext": request_context, "isBase64Encoded": False, **extra}

    async def _call(self, route_key: str, event: dict[str, Any]) -> dict[str, Any]:
        handler = self._routes.get(route_key)
        if handler is None:
            return {"statusCode": 200}
        spec = self.spec.routes[route_key] if self.spec else None
        context = LambdaContext(function_name=spec.logical_id if spec else "", aws_request_id=str(uuid.uuid4()))
        result = await asyncio.to_thread(handler, event, context)
        return result if isinstance(result, dict) else {"statusCode": 200}

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One WebSocket connection, from the upgrade to ``$disconnect``."""
        path: str = scope["path"]
        await receive()  # websocket.connect
        if self.spec is None or path.rstrip("/") != self.path:
            message = f"Invalid URL (GET {path}): WebSocket mode is at {self.path or 'no path here'}."
            error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
            await _refuse(send, 404, {"error": error})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        connection_id = base64.b64encode(secrets.token_bytes(10)).decode()
        source_ip = (scope.get("client") or ("127.0.0.1", 0))[0]
        context: dict[str, Any] = {
            "stage": self.spec.stage,
            "connectionId": connection_id,
            "connectedAt": int(time.time() * 1000),
            "domainName": headers.get("host", "127.0.0.1"),
            "apiId": API_ID,
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("user-agent", "")},
            "extendedRequestId": uuid.uuid4().hex,
        }
        multi = {k: [v] for k, v in headers.items()}
        if self._authorizer is not None:
            refused = await self._authorize(headers, multi, context)
            if refused is not None:
                await _refuse(send, *refused)
                return
        connected = await self._call(
            "$connect", self._event("$connect", "CONNECT", context, headers=headers, multiValueHeaders=multi)
        )
        if int(connected.get("statusCode", 200)) != 200:
            await _refuse(send, int(connected["statusCode"]), {"message": "Forbidden"})
            return
        self._open[connection_id] = (send, context)
        await send({"type": "websocket.accept"})
        try:
            while True:
                incoming = await receive()
                if incoming["type"] == "websocket.disconnect":
                    break
                text: str | None = incoming.get("text")
                data = text if text is not None else (incoming.get("bytes") or b"").decode("utf-8", "replace")
                if len(data.encode()) > MAX_MESSAGE_BYTES:
                    await send({"type": "websocket.close", "code": 1009, "reason": "Message too big"})
                    break
                await self._call("$default", self._event("$default", "MESSAGE", context, body=data))
        finally:
            self._open.pop(connection_id, None)
            await self._call("$disconnect", self._event("$disconnect", "DISCONNECT", context))

    async def _authorize(
        self, headers: dict[str, str], multi: dict[str, list[str]], context: dict[str, Any]
    ) -> tuple[int, dict[str, Any]] | None:
        """Run ``$connect``'s REQUEST authorizer; ``(status, body)`` to refuse the upgrade with, else None (and
        ``context["authorizer"]`` set as API Gateway passes it on)."""
        assert self.spec is not None and self._authorizer is not None
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.auth_mode != "off" and not all(lowered.get(h.lower()) for h in self.spec.identity_headers):
            return 401, {"message": "Unauthorized"}
        method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{self.spec.stage}/$connect"
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": {},
            "stageVariables": {},
            **self._event("$connect", "CONNECT", context),
        }
        spec = self.spec.authorizer
        assert spec is not None
        call_context = LambdaContext(function_name=spec.logical_id, aws_request_id=str(uuid.uuid4()))
        try:
            result = await asyncio.to_thread(self._authorizer, event, call_context)
        except Exception as exc:
            if str(exc) == "Unauthorized":
                return 401, {"message": "Unauthorized"}
            log.exception("authorizer failed")
            return 500, {"message": "Internal server error"}
        if not isinstance(result, dict) or not policy_allows(result.get("policyDocument"), method_arn):
            return 403, {"message": "Forbidden"}
        authorizer = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (result.get("context") or {}).items()}
        authorizer["principalId"] = str(result.get("principalId", ""))
        context["authorizer"] = authorizer
        return None

    # --- the management API and Lambda's Invoke API -------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(LAMBDA_PREFIX + "/"):
            await self._invoke(scope, receive, send)
            return
        connection_id = path.removeprefix(MANAGEMENT_PREFIX + "/@connections/")
        opened = self._open.get(connection_id)
        if opened is None:
            body = json.dumps({"message": f"Connection {connection_id} is gone"}).encode()
            await _answer(send, 410, body, {"x-amzn-ErrorType": "GoneException", "content-type": "application/json"})
            return
        socket_send, context = opened
        method = scope["method"]
        if method == "POST":
            data = await _read_body(receive)
            if len(data) > MAX_MESSAGE_BYTES:
                body = json.dumps({"message": "Message too long"}).encode()
                await _answer(send, 413, body, {"x-amzn-ErrorType": "PayloadTooLargeException"})
                return
            try:
                await socket_send({"type": "websocket.send", "text": data.decode("utf-8")})
            except Exception:  # the client went away while this was being sent
                body = json.dumps({"message": f"Connection {connection_id} is gone"}).encode()
                await _answer(send, 410, body, {"x-amzn-ErrorType": "GoneException"})
                return
            await _answer(send, 200)
        elif method == "DELETE":
            self._open.pop(connection_id, None)
            await socket_send({"type": "websocket.close", "code": 1000})
            await _answer(send, 204)
        else:
            info = {"connectedAt": context["connectedAt"], "identity": context["identity"]}
            await _answer(send, 200, json.dumps(info).encode(), {"content-type": "application/json"})

    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /2015-03-31/functions/{name}/invocations`` for the template's functions (local name = logical id)."""
        rest = scope["path"].removeprefix(LAMBDA_PREFIX + "/2015-03-31/functions/")
        name = rest.removesuffix("/invocations").rsplit(":function:", 1)[-1].split(":")[0]
        spec = self._functions.get(name)
        payload = await _read_body(receive)
        if spec is None:
            body = json.dumps({"Type": "User", "Message": f"Function not found: {name}"}).encode()
            await _answer(send, 404, body, {"x-amzn-ErrorType": "ResourceNotFoundException"})
            return
        handler = _handler(spec)
        event = json.loads(payload or b"{}")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        context = LambdaContext(function_name=spec.logical_id, aws_request_id=str(uuid.uuid4()))
        if headers.get("x-amz-invocation-type") == "Event":
            future = asyncio.get_running_loop().run_in_executor(self._pool, self._run_event, handler, event, context)
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            await _answer(send, 202)
            return
        result = await asyncio.to_thread(handler, event, context)
        await _answer(send, 200, json.dumps(result).encode(), {"content-type": "application/json"})

    @staticmethod
    def _run_event(handler: Handler, event: dict[str, Any], context: LambdaContext) -> None:
        try:
            handler(event, context)
        except Exception:  # an asynchronous invocation's error goes to the function's logs
            log.exception("asynchronous invocation of %s failed", context.function_name)
