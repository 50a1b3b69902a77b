"""engine.keysecret on moto's Secrets Manager: the upstream key (and single mode's key) as a plain secret string or
a console key/value secret's ``api_key`` field; JSON without one is refused rather than sent as a bearer token."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from engine.keysecret import key_from_secret
from engine.providers.chat_completions import ChatCompletionsProvider
from engine.settings import Settings
from tests.conftest import moto_aws


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    with moto_aws(monkeypatch):
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        ("fw-plain-key\n", "fw-plain-key"),
        ('{"api_key": "fw-json-key"}', "fw-json-key"),
        ('{"api_key": " k ", "x": 1}', "k"),
    ],
)
def test_plain_and_key_value_secrets(secrets, stored: str, key: str):
    arn = secrets.create_secret(Name=f"upstream-{len(stored)}", SecretString=stored)["ARN"]
    assert key_from_secret(arn, max_age=1) == key
    provider = ChatCompletionsProvider(
        Settings(upstream_base_url="https://up.example/v1", upstream_api_key_secret_arn=arn)
    )
    assert provider._api_key() == key


@pytest.mark.parametrize("stored", ['{"apiKey": "wrong-field"}', '{"api_key": 42}', '{"not json', '{"api_key": ""}'])
def test_json_without_an_api_key_is_refused(secrets, stored: str):
    arn = secrets.create_secret(Name=f"bad-{abs(hash(stored))}", SecretString=stored)["ARN"]
    with pytest.raises(ValueError, match="api_key"):
        key_from_secret(arn, max_age=1)
