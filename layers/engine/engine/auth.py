"""API keys: which tenant a bearer token belongs to.

One implementation for both entry points: the REST API's Lambda REQUEST authorizer (``functions/authorizer``)
and the streaming function when a request reaches it without that authorizer (its function URL).

Modes (``Settings.auth_mode``):

* ``keys`` (the deployed default): keys live in the table as ``pk=KEY#{sha256(key) hex}``, ``sk=META`` with the
  tenant, a status (``active``/``revoked``), a display suffix (``sk-…abcd``) and ``gsi1pk=KEYS`` for listing.
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
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import APIError
from engine.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = [
    "INVALID_KEY_MESSAGE",
    "KEYS_PARTITION",
    "MISSING_KEY_MESSAGE",
    "AuthenticationError",
    "Authenticator",
    "Identity",
    "KeyRecord",
    "KeyStore",
    "bearer_token",
    "display_suffix",
    "function_url_authenticator",
    "generate_key",
    "hash_key",
    "key_id",
]

KEY_PREFIX = "sk-"
KEYS_PARTITION = "KEYS"  # gsi1pk of every key record
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


# --- the key table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_hash: str
    tenant: str
    status: Literal["active", "revoked"]
    created_at: int
    suffix: str
    name: str = ""
    # API Gateway API key (value and id) this key is metered as, when one was made for it (engine.cli.keys create
    # --usage-plan-id); otherwise the authorizer answers with the stack's shared usage key.
    usage_key: str | None = None
    usage_key_id: str | None = None
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": f"KEY#{self.key_hash}"},
            "sk": {"S": "META"},
            "tenant": {"S": self.tenant},
            "status": {"S": self.status},
            "created_at": {"N": str(self.created_at)},
            "suffix": {"S": self.suffix},
            "gsi1pk": {"S": KEYS_PARTITION},
            "gsi1sk": {"S": f"{self.created_at:012d}#{self.key_hash}"},
        }
        if self.name:
            item["name"] = {"S": self.name}
        if self.usage_key:
            item["usage_key"] = {"S": self.usage_key}
        if self.usage_key_id:
            item["usage_key_id"] = {"S": self.usage_key_id}
        if self.revoked_at is not None:
            item["revoked_at"] = {"N": str(self.revoked_at)}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        def text(name: str) -> str | None:
            value = item.get(name, {}).get("S")
            return str(value) if value is not None else None

        status = text("status")
        return cls(
            key_hash=item["pk"]["S"].removeprefix("KEY#"),
            tenant=item["tenant"]["S"],
            status="active" if status == "active" else "revoked",
            created_at=int(item.get("created_at", {}).get("N", "0")),
            suffix=text("suffix") or "",
            name=text("name") or "",
            usage_key=text("usage_key"),
            usage_key_id=text("usage_key_id"),
            revoked_at=int(item["revoked_at"]["N"]) if "revoked_at" in item else None,
        )


class KeyStore:
    """Key records in the responses table (the same table, its own partitions: ``KEY#…``)."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @cached_property
    def ddb(self) -> DynamoDBClient:
        if self._client is not None:
            return self._client
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
        return boto3.client("dynamodb", config=config)

    def get(self, key_hash: str) -> KeyRecord | None:
        result = self.ddb.get_item(TableName=self.table_name, Key={"pk": {"S": f"KEY#{key_hash}"}, "sk": {"S": "META"}})
        item = result.get("Item")
        return KeyRecord.from_item(item) if item else None

    def add(self, record: KeyRecord) -> None:
        """Store a new key record; an existing one with the same hash is never overwritten."""
        self.ddb.put_item(
            TableName=self.table_name, Item=record.to_item(), ConditionExpression="attribute_not_exists(pk)"
        )

    def put(self, record: KeyRecord) -> None:
        """Store a key record, replacing one with the same hash (local seeding: the same key, again)."""
        self.ddb.put_item(TableName=self.table_name, Item=record.to_item())

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        """Every key record, newest first (optionally one tenant's)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :k",
            "ExpressionAttributeValues": {":k": {"S": KEYS_PARTITION}},
            "ScanIndexForward": False,
        }
        if tenant is not None:
            kwargs["FilterExpression"] = "tenant = :t"
            kwargs["ExpressionAttributeValues"][":t"] = {"S": tenant}
        records: list[KeyRecord] = []
        while True:
            result = self.ddb.query(**kwargs)
            records.extend(KeyRecord.from_item(item) for item in result.get("Items", []))
            if "LastEvaluatedKey" not in result:
                return records
            kwargs["ExclusiveStartKey"] = result["LastEvaluatedKey"]

    def revoke(self, key_hash: str) -> KeyRecord | None:
        """Mark a key revoked (kept, for the record); None if there is no such key."""
        try:
            result = self.ddb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"KEY#{key_hash}"}, "sk": {"S": "META"}},
                UpdateExpression="SET #s = :r, revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":r": {"S": "revoked"}, ":now": {"N": str(int(time.time()))}},
                ReturnValues="ALL_NEW",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return None
        return KeyRecord.from_item(result["Attributes"])


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
        self.store = store or KeyStore(settings.table_name)
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
    import json

    from aws_lambda_powertools.utilities import parameters

    raw = str(parameters.get_secret(secret_arn, max_age=max(int(max_age), 1)))
    if raw.lstrip().startswith("{"):
        return str(json.loads(raw)["api_key"])
    return raw.strip()


@lru_cache(maxsize=1)
def function_url_authenticator() -> Authenticator:
    """The streaming function's own check (requests that did not pass the REST API's authorizer)."""
    settings = get_settings()
    return Authenticator(settings, cache_seconds=settings.auth_cache_seconds)
