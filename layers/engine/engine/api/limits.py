"""The request-size limit of both HTTP edges: ``MAX_REQUEST_BYTES`` (9 MiB by default; API Gateway's own
payload limit is 10 MB), a 413 above it. Stored items have no size limit of their own: those too large for a
DynamoDB item go to the items bucket."""

from __future__ import annotations

from engine.errors import PayloadTooLargeError
from engine.settings import get_settings

__all__ = ["check_request_size"]


def check_request_size(size: int) -> None:
    """Raise a 413 ``request_too_large`` for a body over the limit."""
    limit = get_settings().max_request_bytes
    if size > limit:
        raise PayloadTooLargeError(
            f"The request body is {size} bytes; the limit is {limit} bytes. Send large files by URL, or split the "
            "input over several requests.",
            code="request_too_large",
        )
