"""API key records in the responses table: ``pk = KEY#{sha256(key) hex}``, ``sk = META``, with the tenant, a
status (``active``/``revoked``), a display suffix and ``gsi1pk = KEYS`` for listing. The key itself is never
stored (see ``engine.auth``)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from engine.storage.table import ConditionFailed, DynamoTable, Row

__all__ = ["KEYS_PARTITION", "TENANT_PATTERN", "DynamoKeyStore", "KeyRecord", "check_tenant"]

KEYS_PARTITION = "KEYS"  # gsi1pk of every key record
# Tenant names are part of index keys (``{tenant}#{item id}``): letters, digits, ".", "_" and "-" only, so no
# separator can appear in one and no two tenants' keys can meet.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_tenant(tenant: str) -> str:
    """``tenant`` if it is a safe name, else ``ValueError`` (key creation refuses it)."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(
            f"invalid tenant name {tenant!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return tenant


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

    def to_row(self) -> Row:
        return {
            "pk": f"KEY#{self.key_hash}",
            "sk": "META",
            "tenant": self.tenant,
            "status": self.status,
            "created_at": self.created_at,
            "suffix": self.suffix,
            "gsi1pk": KEYS_PARTITION,
            "gsi1sk": f"{self.created_at:012d}#{self.key_hash}",
            "name": self.name or None,
            "usage_key": self.usage_key,
            "usage_key_id": self.usage_key_id,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_row(cls, row: Row) -> KeyRecord:
        return cls(
            key_hash=str(row["pk"]).removeprefix("KEY#"),
            tenant=str(row["tenant"]),
            status="active" if row.get("status") == "active" else "revoked",
            created_at=int(row.get("created_at", 0)),
            suffix=str(row.get("suffix", "")),
            name=str(row.get("name", "")),
            usage_key=row.get("usage_key"),
            usage_key_id=row.get("usage_key_id"),
            revoked_at=row.get("revoked_at"),
        )


def _key(key_hash: str) -> Row:
    return {"pk": f"KEY#{key_hash}", "sk": "META"}


class DynamoKeyStore:
    """``KeyStore`` on the responses table (its own partitions: ``KEY#…``)."""

    def __init__(self, table_name: str) -> None:
        self.table = DynamoTable(table_name)

    def get(self, key_hash: str) -> KeyRecord | None:
        row = self.table.get(_key(key_hash))
        return KeyRecord.from_row(row) if row else None

    def add(self, record: KeyRecord) -> None:
        """Store a new key record (its tenant a safe name); an existing one with the same hash is never overwritten."""
        check_tenant(record.tenant)
        self.table.put(record.to_row(), condition="attribute_not_exists(pk)")

    def put(self, record: KeyRecord) -> None:
        """Store a key record, replacing one with the same hash (local seeding: the same key, again)."""
        check_tenant(record.tenant)
        self.table.put(record.to_row())

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        """Every key record, newest first (optionally one tenant's)."""
        options: dict[str, Any] = {"index": "gsi1", "forward": False}
        values: Row = {":k": KEYS_PARTITION}
        if tenant is not None:
            options["filter"] = "tenant = :t"
            values[":t"] = tenant
        return [KeyRecord.from_row(row) for row in self.table.query("gsi1pk = :k", values, **options)]

    def revoke(self, key_hash: str) -> KeyRecord | None:
        """Mark a key revoked (kept, for the record); None if there is no such key."""
        try:
            row = self.table.update(
                _key(key_hash),
                "SET #s = :r, revoked_at = if_not_exists(revoked_at, :now)",
                condition="attribute_exists(pk)",
                names={"#s": "status"},
                values={":r": "revoked", ":now": int(time.time())},
                returns="ALL_NEW",
            )
        except ConditionFailed:
            return None
        assert row is not None
        return KeyRecord.from_row(row)
