"""Per-key limits for requests that reach the streaming function without API Gateway (its function URL).

Through the REST API, the usage plan throttles each key (``RateLimit``/``BurstLimit``) and counts its quota
(``QuotaLimit`` per ``QuotaPeriod``) before the function runs. The function URL has no usage plan, so the function
applies the same limits itself, per the same usage key (a key's own usage-plan key, else the stack's shared one,
else the key), with counters in the table (``engine.storage.ratelimit``), and answers as API Gateway's gateway
responses do: 429 ``rate_limit_exceeded`` or 429 ``insufficient_quota``.

The rate is a fixed one-second window of ``FUNCTION_URL_RATE_LIMIT`` requests: the usage plan's token bucket lets a
full bucket (``BurstLimit``) through at once, this window does not, so a burst through the URL is capped at the
steady rate; the sustained rate is the same. Quota windows are calendar periods in UTC (a week starts on Monday).
Each counted request costs one conditional ``UpdateItem`` (two with a quota).
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from engine.auth import Identity
from engine.errors import APIError, RateLimitError
from engine.settings import get_settings

__all__ = ["QuotaExceededError", "enforce_function_url_limits", "quota_window"]

RATE_MESSAGE = "Rate limit reached for requests. Please try again in a moment."
QUOTA_MESSAGE = "You exceeded your current quota. Ask the administrator of this API to raise it."


class QuotaExceededError(APIError):
    """OpenAI's answer for a spent quota (and the template's ``QUOTA_EXCEEDED`` gateway response)."""

    status_code = 429
    type = "insufficient_quota"


def quota_window(now: float, period: Literal["DAY", "WEEK", "MONTH"]) -> tuple[int, int]:
    """``(start, end)`` epoch seconds of the UTC calendar period holding ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "DAY":
        start, end = day, day + timedelta(days=1)
    elif period == "WEEK":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = start + timedelta(days=calendar.monthrange(start.year, start.month)[1])
    return int(start.timestamp()), int(end.timestamp())


def enforce_function_url_limits(identity: Identity, now: float | None = None) -> None:
    """Count this request against the key's rate and quota; raise the 429 when either is spent."""
    settings = get_settings()
    if settings.auth_mode == "off" or (
        settings.function_url_rate_limit <= 0 and settings.function_url_quota_limit <= 0
    ):
        return
    from engine.storage import get_request_counter

    counter = get_request_counter()
    key = identity.usage_key or identity.key_id or identity.tenant
    now = time.time() if now is None else now
    if settings.function_url_rate_limit > 0:
        second = int(now)
        if not counter.take(key, f"S#{second}", settings.function_url_rate_limit, second + 120):
            raise RateLimitError(RATE_MESSAGE, code="rate_limit_exceeded")
    if settings.function_url_quota_limit > 0:
        period = settings.function_url_quota_period
        start, end = quota_window(now, period)
        if not counter.take(key, f"Q#{period}#{start}", settings.function_url_quota_limit, end + 86_400):
            raise QuotaExceededError(QUOTA_MESSAGE, code="insufficient_quota")
