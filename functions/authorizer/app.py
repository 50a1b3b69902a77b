"""The REST API's Lambda REQUEST authorizer: ``Authorization: Bearer <key>`` → Allow with the tenant, or Deny.

API Gateway calls it with the ``Authorization`` header as identity source and caches the answer per header value
for ``ReauthorizeEvery`` (template parameter ``AuthCacheSeconds``), so the policy covers every route of the
stage. A request without the header never gets here: API Gateway answers 401 (``UNAUTHORIZED``) itself. A Deny
becomes 403 ``ACCESS_DENIED``, which the template's GatewayResponses turn into OpenAI's 401 ``invalid_api_key``.

Allow carries ``context={"tenant", "key_id"}`` (flat strings; handlers read ``requestContext.authorizer.tenant``)
and ``usageIdentifierKey``: the API Gateway API key of the usage plan this key is metered by (its own, made by
``python -m engine.cli.keys create --usage-plan-id``, else the stack's shared one from ``USAGE_IDENTIFIER_KEY``).

The WebSocket API's ``$connect`` route uses this function too (same key check, same tenant). Its method ARN names
the route (``…/{stage}/$connect``), which the REST policy's ``/*/*`` would not match, so the policy names it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from engine.auth import AuthenticationError, Authenticator, bearer_token
from engine.observability import inject_invocation_context, logger
from engine.settings import get_settings

if TYPE_CHECKING:
    # annotations only: the first import that runs is the engine's, so init's GC pause (engine.coldstart) covers
    # Powertools' imports too
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lru_cache(maxsize=1)
def authenticator() -> Authenticator:
    """No in-memory cache here: API Gateway caches this function's answers per token already."""
    return Authenticator(get_settings(), usage_key=os.environ.get("USAGE_IDENTIFIER_KEY") or None)


def _policy(principal: str, effect: str, resource: str | list[str], **extra: Any) -> dict[str, Any]:
    """The IAM policy API Gateway expects (the shape Powertools' ``APIGatewayAuthorizerResponse.asdict`` makes).

    Written out here rather than with Powertools' authorizer classes: importing them loads every event class of
    ``aws_lambda_powertools.utilities.data_classes`` (~27 ms of this function's ~150 ms cold start budget) for
    one statement."""
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}, **extra}


def _all_routes(method_arn: str) -> str:
    """Every route of the stage the request came through: ``arn:…:{api_id}/{stage}/*/*`` from the method ARN
    ``arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{path}``."""
    *prefix, route = method_arn.split(":", 5)  # the path may hold a colon too
    api_id, stage = route.split("/")[:2]
    return f"{':'.join(prefix)}:{api_id}/{stage}/*/*"


@inject_invocation_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    headers: dict[str, str] = event.get("headers") or {}
    token = bearer_token(next((v for k, v in headers.items() if k.lower() == "authorization"), None))
    # The WebSocket $connect method ARN names the route (…/{stage}/$connect), which /*/* would not match.
    websocket = (event.get("requestContext") or {}).get("eventType") == "CONNECT"
    resource: str | list[str] = event["methodArn"] if websocket else [_all_routes(event["methodArn"])]
    try:
        identity = authenticator().authenticate(token)
    except AuthenticationError:
        logger.info("API key refused", extra={"has_bearer": token is not None})
        return _policy("anonymous", "Deny", resource)
    tenant_context = {"tenant": identity.tenant, "key_id": identity.key_id}
    if websocket or not identity.usage_key:  # WebSocket APIs have no usage plans: no usageIdentifierKey
        return _policy(identity.tenant, "Allow", resource, context=tenant_context)
    # The cached answer is reused for every route of the stage, so it allows them all.
    return _policy(identity.tenant, "Allow", resource, context=tenant_context, usageIdentifierKey=identity.usage_key)
