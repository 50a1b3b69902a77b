"""Items of any size through the openai client: a 5 MB ``input_image`` data URL and a 2 MB function call output are
stored (in the stack's S3 bucket), read back byte-identical, chained, and deleted without a trace; a request over
the size limit is a clear 413."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import openai
import pytest

from local.aws import LOCAL_FILES_BUCKET
from tests.conftest import UpstreamLog


@pytest.fixture(scope="module")
def aws(stack: str) -> Iterator[dict[str, Any]]:
    health = httpx.get(stack.removesuffix("/v1") + "/_local/health").json()
    options = {"endpoint_url": health["aws_endpoint_url"], "region_name": "us-east-1",
               "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
    yield {
        "table": health["table_name"],
        "ddb": boto3.client("dynamodb", **options),
        "s3": boto3.client("s3", **options),
    }


def _noise(size: int) -> str:
    """Random hex (valid base64 too): gzip cannot bring it under DynamoDB's item limit, and it holds no upper-case
    directive for the scripted upstream."""
    return os.urandom(size // 2).hex()


def _rows_naming(aws: dict[str, Any], *ids: str) -> list[dict[str, Any]]:
    rows, kwargs = [], {"TableName": aws["table"]}
    while True:
        page = aws["ddb"].scan(**kwargs)
        rows += [r for r in page["Items"] if any(i in r["pk"]["S"] + r["sk"]["S"] for i in ids)]
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _objects(aws: dict[str, Any], *ids: str) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=LOCAL_FILES_BUCKET, Prefix="responses/").get("Contents", [])
    return [o["Key"] for o in listed if any(i in o["Key"] for i in ids)]


def test_megabyte_items_are_stored_read_back_chained_and_deleted(
    client: openai.OpenAI, upstream: UpstreamLog, aws: dict[str, Any]
):
    image_url = "data:image/png;base64," + _noise(5 * 1024 * 1024)
    output = _noise(2 * 1024 * 1024)
    parts = [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": image_url}]
    inputs: Any = [
        {"role": "user", "content": parts},
        {"type": "function_call", "call_id": "call_big", "name": "dump", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_big", "output": output},
    ]  # fmt: skip
    first = client.responses.create(model="m", input=inputs)
    assert first.status == "completed"
    assert len(_objects(aws, first.id)) >= 2  # both went to the bucket
    stored = [item.model_dump() for item in client.responses.input_items.list(first.id, order="asc")]
    assert stored[0]["content"][1]["image_url"] == image_url
    assert stored[2]["output"] == output
    assert client.responses.retrieve(first.id).model_dump() == first.model_dump()
    upstream.clear()
    second = client.responses.create(model="m", input="and now?", previous_response_id=first.id)
    assert second.status == "completed"
    sent = upstream.last_messages()
    assert any(part.get("image_url", {}).get("url") == image_url for m in sent if isinstance(m["content"], list)
               for part in m["content"])  # fmt: skip
    assert any(m.get("content") == output for m in sent if m["role"] == "tool")
    client.responses.delete(second.id)
    client.responses.delete(first.id)
    assert _rows_naming(aws, first.id, second.id) == []
    assert _objects(aws, first.id, second.id) == []


def test_a_request_over_the_size_limit_is_413(http: httpx.Client):
    body = {"model": "m", "input": "x" * (9 * 1024 * 1024 + 1)}
    answer = http.post("/responses", json=body)
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert "limit" in error["message"]
