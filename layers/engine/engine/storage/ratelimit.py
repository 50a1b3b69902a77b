"""Request counters for per-key limits: ``pk = LIMIT#{usage key}``, ``sk = {window}`` (``S#{epoch second}`` for the
rate, ``Q#{period}#{start}`` for the quota), ``n`` counted with an atomic ``ADD`` that is refused at the limit, and
``expires_at`` so DynamoDB's TTL removes spent windows."""

from __future__ import annotations

from engine.storage.table import ConditionFailed, DynamoTable

__all__ = ["DynamoRequestCounter"]


class DynamoRequestCounter(DynamoTable):
    """One conditional ``UpdateItem`` per counted request (no read first, so concurrent requests cannot both
    take the last slot)."""

    def take(self, key: str, window: str, limit: int, expires_at: int) -> bool:
        """Count one request in ``window`` of ``key`` unless it already holds ``limit``; False when refused."""
        try:
            self.update(
                {"pk": f"LIMIT#{key}", "sk": window},
                "ADD #n :one SET expires_at = if_not_exists(expires_at, :expires)",
                condition="attribute_not_exists(#n) OR #n < :limit",
                names={"#n": "n"},
                values={":one": 1, ":limit": limit, ":expires": expires_at},
            )
        except ConditionFailed:
            return False
        return True
