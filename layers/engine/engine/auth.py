"""API keys: which tenant a bearer token belongs to.

One implementation for both entry points: the REST API's Lambda REQUEST authorizer (``functions/authorizer``)
and the streaming function when a request reaches it without that authorizer (its function URL).

Modes (``Settings.auth_mode``):

* ``keys`` (the deployed default): key records live in the table (``engine.storage.keys``), found by the
  SHA-256 of the key, with the tenant, a status (``active``/``revoked``) and a display suffix (``sk-…abcd``).
  The key itself is never stored: keys are 48 random URL-safe characters (288 bits), so a plain SHA-256 is as
  good as a slow hash here and costs microseconds. ``python -m engine.cli.keys`` creates, lists and revokes them.
* ``single``: one key, read from a Secrets Manager secret (``api_key_secret_arn``; a plain string or
  ``{"api_key": "…"}``) through Powertools Parameters, cached ``auth_cache_seconds``; tenant ``default_tenant``.
* ``off``: any bearer (or none) is ``default_tenant``. The local stack only: refused inside Lambda.

Nothing here logs a key; log lines carry ``key_id`` (the first 12 hex characters of the key's hash) at most.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from engine.errors import APIError
from engine.settings import Settings, get_settings
from engine.storage import get_key_store
from engine.storage.base import KeyStore

__all__ = [
    "INVALID_KEY_MESSAGE",
    "MISSING_KEY_MESSAGE",
    "AuthenticationError",
    "Authenticator",
    "Identity",
    "bearer_token",
    "display_suffix",
    "function_url_authenticator",
    "generate_key",
    "hash_key",
    "key_id",
]

KEY_PREFIX = "sk-"
_MAX_TOKEN = 512  # longer bearer values are refused without a lookup
_CACHE_ENTRIES = 4096

# The same messages the template's GatewayResponses send (tests/unit/test_auth.py checks they agree).
MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
INVALID_KEY_MESSAGE = (
    "Incorrect API key provided. Check the key in your Authorization header, or ask the administrator of "
    "this API for a new one."
)


class AuthenticationError(APIError):
    """401 ``invalid_api_key``: no key, an unknown key or a revoked one (the client cannot tell which)."""

    status_code = 401
    type = "invalid_request_error"

    def __init__(self, message: str = INVALID_KEY_MESSAGE) -> None:
        super().__init__(message, code="invalid_api_key")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is: its tenant, the key's id (hash prefix; empty when auth is off) and, when the API
    meters keys through a usage plan, the API Gateway API key value to return as ``usageIdentifierKey``."""

    tenant: str
    key_id: str = ""
    usage_key: str | None = None


def generate_key() -> str:
    """``sk-`` + 48 URL-safe random characters (36 random bytes)."""
    return KEY_PREFIX + secrets.token_urlsafe(36)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key_hash: str) -> str:
    return key_hash[:12]


def display_suffix(key: str) -> str:
    """How a key is shown once it is stored: ``sk-…abcd``."""
    return f"{KEY_PREFIX}…{key[-4:]}"


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# --- checking a bearer token -----------------------------------------------------------------------------------


class Authenticator:
    """Bearer token → :class:`Identity`, or :class:`AuthenticationError`.

    ``cache_seconds`` > 0 keeps answers (both kinds) in memory that long, keyed by the token's hash: the
    streaming function's own check, which would otherwise read the table on every request. The authorizer
    passes 0, because API Gateway already caches its answers per token for ``ReauthorizeEvery`` seconds.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cache_seconds: float = 0.0,
        usage_key: str | None = None,
        store: KeyStore | None = None,
    ) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self.usage_key = usage_key
        self.store = store or get_key_store(settings.table_name)
        self._cache: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, token: str | None) -> Identity:
        mode = self.settings.auth_mode
        if mode == "off":
            if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
                # The template allows only keys|single; a hand-set AUTH_MODE=off must not open a deployment.
                from engine.observability import logger

                logger.error("AUTH_MODE=off is for the local stack only; refusing every request")
                raise AuthenticationError()
            return Identity(tenant=self.settings.default_tenant, usage_key=self.usage_key)
        if token is None:
            raise AuthenticationError(MISSING_KEY_MESSAGE)
        if len(token) > _MAX_TOKEN:
            raise AuthenticationError()
        digest = hash_key(token)
        identity = self._cached(digest)
        if identity is False:
            identity = self._lookup(mode, token, digest)
            self._remember(digest, identity)
        if identity is None:
            raise AuthenticationError()
        return identity

    def _lookup(self, mode: str, token: str, digest: str) -> Identity | None:
        if mode == "single":
            expected = _single_key(self.settings.api_key_secret_arn, self.settings.auth_cache_seconds)
            if not hmac.compare_digest(digest, hash_key(expected)):
                return None
            return Identity(tenant=self.settings.default_tenant, key_id=key_id(digest), usage_key=self.usage_key)
        record = self.store.get(digest)
        if record is None or not record.active:
            return None
        return Identity(tenant=record.tenant, key_id=key_id(digest), usage_key=record.usage_key or self.usage_key)

    def _cached(self, digest: str) -> Identity | None | Literal[False]:
        if self.cache_seconds <= 0:
            return False
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None or hit[0] <= time.monotonic():
                return False
            return hit[1]

    def _remember(self, digest: str, identity: Identity | None) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            self._cache[digest] = (time.monotonic() + self.cache_seconds, identity)
            self._cache.move_to_end(digest)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)


def _single_key(secret_arn: str, max_age: float) -> str:
    """The one key of single-user mode: the secret's string, or its ``api_key`` field when it is JSON."""
    if not secret_arn:
        raise RuntimeError("AUTH_MODE=single needs API_KEY_SECRET_ARN")
    from engine.keysecret import key_from_secret

    return key_from_secret(secret_arn, max_age)


@lru_cache(maxsize=1)
def function_url_authenticator() -> Authenticator:
    """The streaming function's own check (requests that did not pass the REST API's authorizer)."""
    settings = get_settings()
    return Authenticator(settings, cache_seconds=settings.auth_cache_seconds)
