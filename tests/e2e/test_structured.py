"""Structured outputs and multimodal input, through the openai client."""

from __future__ import annotations

from typing import Any

import openai
import pydantic
import pytest

from tests.conftest import UpstreamLog


class Pet(pydantic.BaseModel):
    name: str
    age: int


def test_parse_with_a_pydantic_model(client: openai.OpenAI, upstream: UpstreamLog):
    parsed = client.responses.parse(model="m", input='REPLY {"name": "Rex", "age": 3}', text_format=Pet)
    assert parsed.output_parsed == Pet(name="Rex", age=3)
    sent = upstream.requests()[-1]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Pet" and sent["json_schema"]["strict"]
    echoed = parsed.model_dump(by_alias=True)["text"]["format"]
    assert echoed["type"] == "json_schema" and echoed["strict"] is True and echoed["schema"]["required"]


def test_output_that_breaks_a_strict_schema_fails_clearly(client: openai.OpenAI):
    fmt: Any = {
        "type": "json_schema",
        "name": "pet",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    }
    # a failed foreground create is OpenAI's 500 envelope; the failed response is stored with the reason
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="m", input='REPLY {"name": "Rex", "age": "old"}', text={"format": fmt})
    response = client.responses.retrieve(caught.value.response.headers["x-response-id"])
    assert response.status == "failed" and response.error is not None
    assert "age" in response.error.message and "pet" in response.error.message
    assert response.error.message in caught.value.message
    with pytest.raises(openai.InternalServerError) as not_json:
        client.responses.create(model="m", input="REPLY sure thing", text={"format": {"type": "json_object"}})
    assert client.responses.retrieve(not_json.value.response.headers["x-response-id"]).status == "failed"
    good = client.responses.create(model="m", input='REPLY {"ok": true}', text={"format": {"type": "json_object"}})
    assert good.status == "completed"


def test_images_and_files_reach_the_model_as_parts(client: openai.OpenAI, upstream: UpstreamLog):
    content: Any = [
        {"type": "input_text", "text": "describe"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
        {"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64,aGk="},
    ]
    response = client.responses.create(model="m", input=[{"role": "user", "content": content}])
    assert response.status == "completed"
    parts = upstream.last_messages()[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "file"]
    assert parts[1]["image_url"] == {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}
    assert parts[3]["file"] == {"file_data": "data:text/plain;base64,aGk=", "filename": "a.txt"}
