"""Files API through the official client: multipart upload through the gateway, list, retrieve, content, delete;
the bytes in the stack's S3 bucket under the tenant's prefix; another tenant sees nothing."""

from __future__ import annotations

import io
from typing import Any

import boto3
import httpx
import openai
import pytest


def _health(stack: str) -> dict[str, str]:
    return dict(httpx.get(stack.removesuffix("/v1") + "/_local/health").json())


def stack_s3(stack: str) -> Any:
    """The local stack's moto S3 (fake credentials, as the stack's own functions use)."""
    return boto3.client(
        "s3",
        endpoint_url=_health(stack)["aws_endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_upload_list_retrieve_content_delete(client: openai.OpenAI, stack: str) -> None:
    # Given a binary payload (not valid UTF-8) and a text file
    binary = bytes(range(256)) * 40
    uploaded = client.files.create(file=("blob.bin", io.BytesIO(binary)), purpose="assistants")
    text = client.files.create(file=("notes.md", b"# Notes\nhello"), purpose="user_data")
    # Then the records say what was stored
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(binary) and uploaded.filename == "blob.bin"
    assert uploaded.purpose == "assistants" and uploaded.object == "file"
    assert client.files.retrieve(uploaded.id).bytes == len(binary)
    # And the content comes back byte for byte (binary through the gateway both ways)
    assert client.files.content(uploaded.id).read() == binary
    assert client.files.content(text.id).read() == b"# Notes\nhello"
    # And listing finds both, newest first, and filters by purpose
    ids = [f.id for f in client.files.list()]
    assert ids.index(text.id) < ids.index(uploaded.id)
    assert [f.id for f in client.files.list(purpose="user_data") if f.id in (text.id, uploaded.id)] == [text.id]
    # And the object is in the stack's bucket under the tenant's prefix
    s3 = stack_s3(stack)
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="tenants/")["Contents"]]
    assert f"tenants/default/files/{uploaded.id}" in keys
    # When the file is deleted
    deleted = client.files.delete(uploaded.id)
    # Then it is gone everywhere
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="tenants/").get("Contents", [])]
    assert f"tenants/default/files/{uploaded.id}" not in keys


def test_bucket_is_private_encrypted_and_expires(stack: str) -> None:
    s3 = stack_s3(stack)
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert lifecycle["Status"] == "Enabled" and lifecycle["Expiration"]["Days"] == 30


def test_bad_uploads_are_openai_shaped_4xx(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as bad_purpose:
        client.files.create(file=("a.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad_purpose.value.body["param"] == "purpose"  # type: ignore[index]
    answer = http.post("/files", json={"purpose": "assistants"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "file"
    answer = http.post("/files", files={"file": ("a.txt", b"x")})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "missing_required_parameter"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
