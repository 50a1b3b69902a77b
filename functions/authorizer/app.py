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

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from engine.auth import AuthenticationError, Authenticator, bearer_token
from engine.observability import inject_invocation_context, logger
from engine.settings import get_settings


@lru_cache(maxsize=1)
def authenticator() -> Authenticator:
    """No in-memory cache here: API Gateway caches this function's answers per token already."""
    return Authenticator(get_settings(), usage_key=os.environ.get("USAGE_IDENTIFIER_KEY") or None)


def _policy(event: APIGatewayAuthorizerRequestEvent, principal: str, **kwargs: Any) -> APIGatewayAuthorizerResponse:
    arn = event.parsed_arn
    return APIGatewayAuthorizerResponse(
        principal_id=principal,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        partition=arn.partition,
        **kwargs,
    )


def _websocket_policy(
    event: APIGatewayAuthorizerRequestEvent, principal: str, effect: str, **extra: Any
) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event.method_arn}
    return {"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}, **extra}


@inject_invocation_context
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def lambda_handler(event: APIGatewayAuthorizerRequestEvent, context: LambdaContext) -> dict[str, Any]:
    headers: dict[str, str] = event.raw_event.get("headers") or {}
    token = bearer_token(next((v for k, v in headers.items() if k.lower() == "authorization"), None))
    websocket = (event.raw_event.get("requestContext") or {}).get("eventType") == "CONNECT"
    try:
        identity = authenticator().authenticate(token)
    except AuthenticationError:
        logger.info("API key refused", extra={"has_bearer": token is not None})
        if websocket:
            return _websocket_policy(event, "anonymous", "Deny")
        denied = _policy(event, "anonymous")
        denied.deny_all_routes()
        return denied.asdict()
    if websocket:  # WebSocket APIs have no usage plans: no usageIdentifierKey
        tenant_context = {"tenant": identity.tenant, "key_id": identity.key_id}
        return _websocket_policy(event, identity.tenant, "Allow", context=tenant_context)
    allowed = _policy(
        event,
        identity.tenant,
        context={"tenant": identity.tenant, "key_id": identity.key_id},
        usage_identifier_key=identity.usage_key,
    )
    # The cached answer is reused for every route of the stage, so it must allow them all.
    allowed.allow_all_routes()
    return allowed.asdict()
