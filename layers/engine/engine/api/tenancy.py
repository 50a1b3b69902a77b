"""Which tenant a request belongs to: the REST API's Lambda authorizer puts it in the request context
(``requestContext.authorizer.tenant``, see ``functions/authorizer`` and ``engine.auth``)."""

from __future__ import annotations

from typing import Any

from engine.auth import AuthenticationError
from engine.settings import get_settings

__all__ = ["tenant_from_authorizer"]


def tenant_from_authorizer(authorizer: dict[str, Any] | None) -> str:
    """The authorizer's tenant. Without one the request did not pass the authorizer: with auth off (local stack)
    that is the default tenant; otherwise it fails closed (401) rather than guessing a tenant."""
    tenant = (authorizer or {}).get("tenant")
    if tenant:
        return str(tenant)
    settings = get_settings()
    if settings.auth_mode == "off":
        return settings.default_tenant
    raise AuthenticationError()
