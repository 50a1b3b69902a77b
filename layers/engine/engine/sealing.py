"""Reasoning sealed for the client (``include: ["reasoning.encrypted_content"]``), opened when it comes back.

AES-256-GCM from ``cryptography`` with a deployment key (Secrets Manager; a local key in the local stack).
The tenant is authenticated data, so a blob only opens for the tenant it was made for; a tampered, foreign or
truncated blob is rejected, never half-read.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from engine.errors import InvalidRequestError
from engine.settings import get_settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["open_reasoning", "seal_reasoning"]

_PREFIX = "rsn1."


@lru_cache(maxsize=1)
def _cipher() -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    settings = get_settings()
    if settings.reasoning_key_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        material = str(parameters.get_secret(settings.reasoning_key_secret_arn, max_age=3600))
    elif settings.reasoning_key:
        material = settings.reasoning_key.get_secret_value()
    else:
        raise RuntimeError("no reasoning key configured (REASONING_KEY_SECRET_ARN or REASONING_KEY)")
    # Any secret string works: the AES key is its SHA-256.
    return AESGCM(hashlib.sha256(material.encode()).digest())


def seal_reasoning(text: str, tenant: str) -> str:
    nonce = os.urandom(12)
    sealed = _cipher().encrypt(nonce, text.encode(), tenant.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_reasoning(blob: str, tenant: str, *, param: str) -> str:
    """The reasoning text of a blob this deployment sealed for this tenant; a 400 for anything else."""
    from cryptography.exceptions import InvalidTag

    error = InvalidRequestError(
        "The encrypted reasoning content could not be verified: it was not produced by this deployment for "
        "this account, or it was altered.",
        param=param,
        code="invalid_encrypted_content",
    )
    if not blob.startswith(_PREFIX):
        raise error
    try:
        raw = base64.urlsafe_b64decode(blob[len(_PREFIX) :].encode())
        return _cipher().decrypt(raw[:12], raw[12:], tenant.encode()).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise error from None
