"""Which tenant a request belongs to: the REST authorizer's context (a later change adds the authorizer)."""

from __future__ import annotations

from typing import Any

from .settings import get_settings

__all__ = ["tenant_from_authorizer"]


def tenant_from_authorizer(authorizer: dict[str, Any] | None) -> str:
    tenant = (authorizer or {}).get("tenant")
    return str(tenant) if tenant else get_settings().default_tenant
