"""API key management: ``python -m engine.cli.keys create|list|revoke`` (keys mode; see ``engine.auth``).

Uses the engine's table (``TABLE_NAME``) and the usual AWS environment (profile, region, ``AWS_ENDPOINT_URL``
for the local stack's moto)::

    python -m engine.cli.keys create --tenant team-a [--name laptop] [--usage-plan-id abc123]
    python -m engine.cli.keys list [--tenant team-a] [--json]
    python -m engine.cli.keys revoke sk-...            # or the id (hash prefix) that `list` shows

``create`` prints the new key once, alone on stdout (the table keeps only its SHA-256). With
``--usage-plan-id`` (default: ``USAGE_PLAN_ID``), it also makes an API Gateway API key for it in that usage plan,
so the key has throttle and quota counters of its own; without, it shares the stack's default usage-plan key.
``revoke`` takes effect within the authorizer cache time (``AuthCacheSeconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from engine.auth import display_suffix, generate_key, hash_key, key_id
from engine.settings import get_settings
from engine.storage import KeyStore, get_key_store
from engine.storage.keys import KeyRecord, check_tenant

__all__ = ["main"]

_MIN_PREFIX = 6


def _created(record: KeyRecord) -> str:
    return datetime.fromtimestamp(record.created_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _usage_plan_key(plan_id: str, tenant: str, digest: str) -> tuple[str, str]:
    """A new API Gateway API key in usage plan ``plan_id``: (value, id). The value only meters: API Gateway
    takes it from the authorizer (ApiKeySourceType AUTHORIZER), never from a client."""
    import boto3

    apigateway: Any = boto3.client("apigateway")
    value = "usage-" + secrets.token_urlsafe(30)
    created = apigateway.create_api_key(
        name=f"responses-{tenant}-{key_id(digest)}",
        description=f"Usage-plan key of API key {key_id(digest)} (tenant {tenant})",
        enabled=True,
        value=value,
        tags={"tenant": tenant, "key_id": key_id(digest)},
    )
    apigateway.create_usage_plan_key(usagePlanId=plan_id, keyId=created["id"], keyType="API_KEY")
    return value, str(created["id"])


def create(store: KeyStore, tenant: str, name: str, usage_plan_id: str | None) -> tuple[str, KeyRecord]:
    check_tenant(tenant)  # before anything is made
    key = generate_key()
    digest = hash_key(key)
    usage_key, usage_key_id = _usage_plan_key(usage_plan_id, tenant, digest) if usage_plan_id else (None, None)
    record = KeyRecord(
        key_hash=digest,
        tenant=tenant,
        status="active",
        created_at=int(time.time()),
        suffix=display_suffix(key),
        name=name,
        usage_key=usage_key,
        usage_key_id=usage_key_id,
    )
    store.add(record)
    return key, record


def find(store: KeyStore, key_or_prefix: str) -> KeyRecord:
    """The record of a full key (``sk-…``) or of a unique hash prefix (the id ``list`` shows)."""
    if key_or_prefix.startswith("sk-"):
        record = store.get(hash_key(key_or_prefix))
        if record is None:
            raise LookupError("no such key")
        return record
    prefix = key_or_prefix.lower()
    if len(prefix) < _MIN_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
        raise LookupError(f"give the key itself (sk-...) or at least {_MIN_PREFIX} hex characters of its id")
    matches = [r for r in store.list() if r.key_hash.startswith(prefix)]
    if len(matches) != 1:
        raise LookupError("no key has that id" if not matches else f"{len(matches)} keys start with {prefix}")
    return matches[0]


def revoke(store: KeyStore, key_or_prefix: str) -> KeyRecord:
    record = store.revoke(find(store, key_or_prefix).key_hash)
    if record is None:
        raise LookupError("no such key")
    if record.usage_key_id:
        # Belt and braces: a disabled usage-plan key is refused by API Gateway too (the table already refuses it).
        try:
            import boto3

            apigateway: Any = boto3.client("apigateway")
            apigateway.update_api_key(
                apiKey=record.usage_key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
            )
        except Exception as exc:  # the revocation itself has happened
            print(f"warning: could not disable usage-plan key {record.usage_key_id}: {exc}", file=sys.stderr)
    return record


def _row(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": key_id(record.key_hash),
        "tenant": record.tenant,
        "status": record.status,
        "key": record.suffix,
        "created": _created(record),
        "name": record.name,
        "usage_key_id": record.usage_key_id,
    }


def _print_table(records: list[KeyRecord]) -> None:
    rows = [_row(r) for r in records]
    columns = ["id", "tenant", "status", "key", "created", "name"]
    widths = {c: max([len(c), *(len(str(row[c])) for row in rows)]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.cli.keys", description="Manage the API's keys.")
    parser.add_argument("--table", help="DynamoDB table (default: TABLE_NAME)")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="create a key and print it once")
    make.add_argument("--tenant", required=True, help="the tenant (account) the key acts as")
    make.add_argument("--name", default="", help="a label to recognise the key by")
    make.add_argument(
        "--usage-plan-id",
        default=os.environ.get("USAGE_PLAN_ID") or None,
        help="also meter the key by an API Gateway key of its own in this usage plan (default: USAGE_PLAN_ID)",
    )
    listing = commands.add_parser("list", help="list keys, newest first (never the keys themselves)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    drop = commands.add_parser("revoke", help="revoke a key (by the key, or by the id that list shows)")
    drop.add_argument("key", help="the key (sk-...) or its id (a hash prefix)")
    args = parser.parse_args(argv)

    if args.command == "create":
        try:
            check_tenant(args.tenant.strip())
        except ValueError as exc:
            parser.error(str(exc))
    store = get_key_store(args.table or get_settings().table_name)
    try:
        if args.command == "create":
            key, record = create(store, args.tenant.strip(), args.name, args.usage_plan_id)
            print(key)
            metered = f"usage-plan key {record.usage_key_id}" if record.usage_key_id else "the shared usage-plan key"
            print(
                f"created key {key_id(record.key_hash)} ({record.suffix}) for tenant {record.tenant!r}, metered by "
                f"{metered}. It is shown only this once: store it now.",
                file=sys.stderr,
            )
        elif args.command == "list":
            records = store.list(args.tenant)
            if args.json:
                for record in records:
                    print(json.dumps(_row(record)))
            else:
                _print_table(records)
        else:
            record = revoke(store, args.key)
            print(f"revoked key {key_id(record.key_hash)} ({record.suffix}) of tenant {record.tenant!r}")
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
