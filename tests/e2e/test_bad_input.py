"""Bad input gets a clear OpenAI-shaped 4xx, never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

CASES: list[tuple[str, Any, str | None, str | None]] = [
    ("malformed json", b'{"model": "m", "input": ', None, "invalid_json"),
    ("not an object", b"[1, 2]", None, "invalid_type"),
    ("missing model", {"input": "x"}, "model", "missing_required_parameter"),
    ("missing input", {"model": "m"}, "input", "missing_required_parameter"),
    ("temperature 5", {"model": "m", "input": "x", "temperature": 5}, "temperature", "invalid_value"),
    ("top_p 2", {"model": "m", "input": "x", "top_p": 2}, "top_p", "invalid_value"),
    ("temperature as string", {"model": "m", "input": "x", "temperature": "hot"}, "temperature", "invalid_type"),
    ("max_output_tokens 1", {"model": "m", "input": "x", "max_output_tokens": 1}, "max_output_tokens", "invalid_value"),
    ("input number", {"model": "m", "input": 123}, "input", None),
    ("previous id int", {"model": "m", "input": "x", "previous_response_id": 7}, "previous_response_id",
     "invalid_type"),
    ("metadata 17 keys", {"model": "m", "input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", None),
    ("metadata long value", {"model": "m", "input": "x", "metadata": {"k": "v" * 513}}, "metadata", None),
    ("metadata non-string", {"model": "m", "input": "x", "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ("bad role", {"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0]", None),
    ("unknown item type", {"model": "m", "input": [{"type": "teleport"}]}, "input[0]", None),
    ("bad content part", {"model": "m", "input": [{"role": "user", "content": [{"type": "x"}]}]}, "input[0]", None),
    ("unknown include", {"model": "m", "input": "x", "include": ["everything"]}, "include[0]", None),
    ("unknown tool type", {"model": "m", "input": "x", "tools": [{"type": "teleport"}]}, "tools[0].type", None),
    ("safety_identifier too long", {"model": "m", "input": "x", "safety_identifier": "s" * 65}, "safety_identifier",
     None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "param", "code"), CASES, ids=[c[0] for c in CASES])
def test_bad_create_is_a_clear_400(http: httpx.Client, name: str, body: Any, param: str | None, code: str | None):
    for stream in (False, True):
        if isinstance(body, bytes):
            response = http.post("/responses", content=body, headers={"content-type": "application/json"})
        else:
            response = http.post("/responses", json={**body, "stream": stream})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and error["message"]
        assert "Traceback" not in error["message"]
        if param is not None:
            assert error["param"] is not None and error["param"].startswith(param), error
        if code is not None:
            assert error["code"] == code, error


def test_unknown_top_level_fields_are_ignored(http: httpx.Client):
    response = http.post("/responses", json={"model": "m", "input": "x", "client_metadata": {"a": 1}})
    assert response.status_code == 200 and response.json()["status"] == "completed"


def test_hosted_tools_are_accepted_but_not_offered(http: httpx.Client):
    tools = [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {"type": "object"}}]
    response = http.post("/responses", json={"model": "m", "input": "x", "tools": tools})
    assert response.status_code == 200 and response.headers["x-ignored-tools"] == "web_search"
    assert [t["type"] for t in response.json()["tools"]] == ["function"]
