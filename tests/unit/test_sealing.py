"""Sealed content: bound to tenant and purpose, named by key id, still opened after the key rotates."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator

import pytest

from engine.errors import InvalidRequestError
from engine.sealing import _keyring, key_id_of, open_reasoning, open_sealed, seal, seal_reasoning
from engine.settings import get_settings


def _use_keys(monkeypatch: pytest.MonkeyPatch, current: str, previous: str = "") -> None:
    monkeypatch.delenv("REASONING_KEY_SECRET_ARN", raising=False)
    monkeypatch.setenv("REASONING_KEY", current)
    monkeypatch.setenv("REASONING_PREVIOUS_KEYS", previous)
    get_settings.cache_clear()
    _keyring.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _use_keys(monkeypatch, "key-one")
    yield
    get_settings.cache_clear()
    _keyring.cache_clear()


def test_blob_names_its_key_and_opens_only_for_its_tenant_and_purpose() -> None:
    blob = seal("the summary", "tenant-a", "compaction")
    assert blob.startswith(f"cmp2.{key_id_of('key-one')}.") and "the summary" not in blob
    assert open_sealed(blob, "tenant-a", "compaction", param="input[0]") == "the summary"
    with pytest.raises(InvalidRequestError) as foreign:
        open_sealed(blob, "tenant-b", "compaction", param="input[0]")
    assert foreign.value.param == "input[0]" and foreign.value.code == "invalid_encrypted_content"
    # a compaction blob relabelled as reasoning does not open as reasoning
    relabelled = "rsn2." + blob.removeprefix("cmp2.")
    with pytest.raises(InvalidRequestError):
        open_reasoning(relabelled, "tenant-a", param="input[0].encrypted_content")


def test_tampered_truncated_and_unknown_key_blobs_are_rejected() -> None:
    blob = seal("text", "t", "compaction")
    prefix, key_id, payload = blob.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[-1] ^= 1
    tampered = f"{prefix}.{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    for bad in (tampered, blob[:-8], f"{prefix}.000000000000.{payload}", "cmp2.", "plain text"):
        with pytest.raises(InvalidRequestError):
            open_sealed(bad, "t", "compaction", param="input[0]")


def test_blobs_of_the_previous_key_open_after_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    old_reasoning = seal_reasoning("old thoughts", "t")
    old_summary = seal("old summary", "t", "compaction")
    _use_keys(monkeypatch, "key-two", previous="key-one")
    new_summary = seal("new summary", "t", "compaction")
    assert key_id_of("key-two") in new_summary
    assert open_reasoning(old_reasoning, "t", param="p") == "old thoughts"
    assert open_sealed(old_summary, "t", "compaction", param="p") == "old summary"
    # once the old key is retired, its blobs no longer open
    _use_keys(monkeypatch, "key-two")
    with pytest.raises(InvalidRequestError):
        open_sealed(old_summary, "t", "compaction", param="p")
    assert open_sealed(new_summary, "t", "compaction", param="p") == "new summary"


def test_reasoning_sealed_before_key_ids_still_opens() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    # the rsn1 format: the tenant alone as authenticated data, the current key
    nonce = os.urandom(12)
    sealed = AESGCM(hashlib.sha256(b"key-one").digest()).encrypt(nonce, b"legacy", b"t")
    blob = "rsn1." + base64.urlsafe_b64encode(nonce + sealed).decode()
    assert open_reasoning(blob, "t", param="p") == "legacy"
    with pytest.raises(InvalidRequestError):
        open_sealed(blob, "t", "compaction", param="p")
