"""An API key kept in Secrets Manager: the secret's plain string, or the ``api_key`` field of a key/value secret
(what the console's "Other type of secret" key/value editor stores as JSON). Read through Powertools Parameters,
cached ``max_age`` seconds."""

from __future__ import annotations

import json

__all__ = ["key_from_secret"]


def key_from_secret(secret_arn: str, max_age: float) -> str:
    """The key in ``secret_arn``; a JSON object must have a string ``api_key``, or this raises ``ValueError``
    (sending the whole JSON as a bearer token would only fail later, upstream, with a misleading 401)."""
    from aws_lambda_powertools.utilities import parameters

    raw = str(parameters.get_secret(secret_arn, max_age=max(int(max_age), 1))).strip()
    if not raw.startswith("{"):
        return raw
    try:
        value = json.loads(raw).get("api_key")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"secret {secret_arn} is JSON without a string api_key field")
    return value.strip()
