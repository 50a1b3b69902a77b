"""Content sealed for the client and opened when it comes back: reasoning (``include:
["reasoning.encrypted_content"]``) and compaction summaries (``compaction`` items).

AES-256-GCM from ``cryptography`` with a deployment key (a Secrets Manager secret; a plain value in the local
stack). The tenant and the purpose are authenticated data, so a blob only opens for the tenant it was made for
and as what it was made as (a reasoning blob is not a compaction summary); a tampered, foreign or truncated blob
is rejected, never half-read.

Blobs name the key that sealed them (``<purpose>2.<key id>.<base64 nonce+ciphertext>``; the key id is a hash of
the key, not the key), so the key can rotate: blobs of the previous key still open. Deployed, the previous key is
the secret's ``AWSPREVIOUS`` version (what Secrets Manager keeps after a rotation); locally
``REASONING_PREVIOUS_KEYS`` (comma-separated). Reasoning sealed before key ids (``rsn1.``) opens with the current
key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from engine.errors import InvalidRequestError
from engine.settings import get_settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Purpose", "key_id_of", "open_reasoning", "open_sealed", "seal", "seal_reasoning"]

Purpose = Literal["reasoning", "compaction", "credentials"]

_PREFIX: dict[Purpose, str] = {"reasoning": "rsn2.", "compaction": "cmp2.", "credentials": "crd2."}
_LEGACY_REASONING = "rsn1."
_MESSAGES: dict[Purpose, str] = {
    "reasoning": "The encrypted reasoning content could not be verified",
    "compaction": "The compaction item's encrypted content could not be verified",
    "credentials": "A background run's sealed credentials could not be opened",
}
# How often an unknown key id may trigger a fresh read of the secret (a rotation happened since this process
# read it); forged key ids must not turn into a Secrets Manager call each.
_REFRESH_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Key:
    key_id: str
    cipher: AESGCM


def key_id_of(material: str) -> str:
    """The public name of a key: 12 hex digits of a hash of its AES key (never the key itself)."""
    return hashlib.sha256(b"key-id:" + _aes_key(material)).hexdigest()[:12]


def _aes_key(material: str) -> bytes:
    # Any secret string works: the AES key is its SHA-256.
    return hashlib.sha256(material.encode()).digest()


def _key(material: str) -> _Key:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return _Key(key_id_of(material), AESGCM(_aes_key(material)))


class _Keyring:
    """The current key (seals and opens) and the previous ones (open only). The current key is read on first
    use; the previous ones only when a blob names a key that is not the current one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: _Key | None = None
        self._previous: dict[str, _Key] | None = None
        self._refreshed = 0.0

    def _read_current(self, force: bool) -> _Key:
        settings = get_settings()
        if settings.reasoning_key_secret_arn:
            from aws_lambda_powertools.utilities import parameters

            material = str(parameters.get_secret(settings.reasoning_key_secret_arn, max_age=3600, force_fetch=force))
        elif settings.reasoning_key:
            material = settings.reasoning_key.get_secret_value()
        else:
            raise RuntimeError("no sealing key configured (REASONING_KEY_SECRET_ARN or REASONING_KEY)")
        return _key(material)

    def _read_previous(self) -> dict[str, _Key]:
        settings = get_settings()
        materials: list[str] = []
        if settings.reasoning_key_secret_arn:
            from aws_lambda_powertools.utilities import parameters

            try:
                # A provider of its own: Powertools caches by name only, and AWSPREVIOUS must not replace the
                # default provider's cached current value.
                provider = parameters.SecretsProvider()
                materials.append(str(provider.get(settings.reasoning_key_secret_arn, VersionStage="AWSPREVIOUS")))
            except Exception:  # a secret never rotated has no AWSPREVIOUS version
                pass
        else:
            listed = settings.reasoning_previous_keys
            materials = [k for k in (listed.get_secret_value() if listed else "").split(",") if k]
        return {key.key_id: key for key in map(_key, materials)}

    def current(self) -> _Key:
        with self._lock:
            if self._current is None:
                self._current = self._read_current(force=False)
            return self._current

    def find(self, key_id: str) -> _Key | None:
        current = self.current()
        if key_id == current.key_id:
            return current
        with self._lock:
            if self._previous is None or (
                key_id not in self._previous and time.monotonic() - self._refreshed > _REFRESH_SECONDS
            ):
                # the key may have rotated since this process read it
                if self._previous is not None:
                    self._current = self._read_current(force=True)
                self._previous = self._read_previous()
                self._refreshed = time.monotonic()
            assert self._current is not None
            return self._current if key_id == self._current.key_id else self._previous.get(key_id)


@lru_cache(maxsize=1)
def _keyring() -> _Keyring:
    return _Keyring()


def _aad(purpose: Purpose, tenant: str) -> bytes:
    return f"{purpose}\x00{tenant}".encode()


def seal(text: str, tenant: str, purpose: Purpose) -> str:
    """``text`` sealed for ``tenant`` as ``purpose``, under the current key."""
    key = _keyring().current()
    nonce = os.urandom(12)
    sealed = key.cipher.encrypt(nonce, text.encode(), _aad(purpose, tenant))
    return f"{_PREFIX[purpose]}{key.key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def open_sealed(blob: str, tenant: str, purpose: Purpose, *, param: str) -> str:
    """The text of a blob this deployment sealed for this tenant as ``purpose``; a 400 naming ``param`` for
    anything else."""
    from cryptography.exceptions import InvalidTag

    error = InvalidRequestError(
        f"{_MESSAGES[purpose]}: it was not produced by this deployment for this account, or it was altered.",
        param=param,
        code="invalid_encrypted_content",
    )
    key: _Key | None
    if purpose == "reasoning" and blob.startswith(_LEGACY_REASONING):
        key, payload, aad = _keyring().current(), blob[len(_LEGACY_REASONING) :], tenant.encode()
    elif blob.startswith(_PREFIX[purpose]):
        key_id, dot, payload = blob[len(_PREFIX[purpose]) :].partition(".")
        key, aad = (_keyring().find(key_id) if dot else None), _aad(purpose, tenant)
    else:
        raise error
    if key is None:
        raise error
    try:
        raw = base64.urlsafe_b64decode(payload.encode())
        return key.cipher.decrypt(raw[:12], raw[12:], aad).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise error from None


def seal_reasoning(text: str, tenant: str) -> str:
    return seal(text, tenant, "reasoning")


def open_reasoning(blob: str, tenant: str, *, param: str) -> str:
    """The reasoning text of a blob this deployment sealed for this tenant; a 400 for anything else."""
    return open_sealed(blob, tenant, "reasoning", param=param)
