"""Each class of bad input the fuzzer found answered with a 5xx is now an OpenAI-shaped 400 naming what is
wrong, on every route that reads it: unparseable bodies (BOM, deep nesting, huge numbers, non-UTF-8, wrong
content types), types pydantic never checked (tools, tool_choice, prompt), malformed conversation ids, strict
schemas that are no schemas, and ``$ref``s that would be fetched."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

BODY_ROUTES = ["/responses", "/responses/input_tokens", "/conversations", "/conversations/conv_x/items"]
UNPARSEABLE: list[tuple[str, bytes]] = [
    ("bom", b'\xef\xbb\xbf{"model": "m", "input": "x"}'),
    ("deep nesting", b'{"model": "m", "input": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
    ("huge integer", b'{"model": "m", "input": "x", "max_output_tokens": ' + b"9" * 5000 + b"}"),
    ("not utf-8", b'{"model": "m", "input": "\xff\xfe"}'),
    ("lone surrogate", b'{"model": "m", "input": "\\ud800"}'),
    ("NaN", b'{"model": "m", "input": "x", "temperature": NaN}'),
    ("truncated", b'{"model": "m", "input": '),
]


def _assert_400(response: httpx.Response, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["message"] and "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(("name", "body"), UNPARSEABLE, ids=[u[0] for u in UNPARSEABLE])
def test_unparseable_bodies_are_400_invalid_json(http: httpx.Client, route: str, name: str, body: bytes):
    _assert_400(http.post(route, content=body, headers={"content-type": "application/json"}), code="invalid_json")


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"]
)
def test_any_content_type_is_read_as_json(http: httpx.Client, route: str, content_type: str):
    # the body is JSON whatever it says it is (Powertools answered other types with a 500)
    _assert_400(http.post(route, content=b"a=1&b=2", headers={"content-type": content_type}), code="invalid_json")
    if route == "/conversations":
        created = http.post(route, content=b'{"metadata": {"k": "v"}}', headers={"content-type": content_type})
        assert created.status_code == 200 and created.json()["metadata"] == {"k": "v"}


def test_the_same_body_gets_the_same_400_from_create_and_input_tokens(http: httpx.Client):
    for body in ({"model": "m", "input": "x", "tools": [{"type": ["function"]}]}, {"model": "m", "temperature": "x"}):
        create = _assert_400(http.post("/responses", json=body))
        count = _assert_400(http.post("/responses/input_tokens", json=body))
        assert (create["param"], create["code"]) == (count["param"], count["code"])


TYPED: list[tuple[str, dict[str, Any], str]] = [
    ("tool type a list", {"tools": [{"type": ["function"]}]}, "tools[0].type"),
    ("tool type an object", {"tools": [{"type": {"a": 1}}]}, "tools[0].type"),
    ("tool a string", {"tools": ["function"]}, "tools[0]"),
    ("nested function a string", {"tools": [{"type": "function", "function": "f"}]}, "tools[0].function"),
    ("function name an object", {"tools": [{"type": "function", "name": {}}]}, "tools[0].name"),
    ("namespace member a number", {"tools": [{"type": "namespace", "name": "n", "tools": [1]}]}, "tools[0].tools[0]"),
    ("custom format a string", {"tools": [{"type": "custom", "name": "c", "format": "x"}]}, "tools[0].format"),
    ("mcp allowed_tools nested list", {"tools": [{"type": "mcp", "server_label": "s", "server_url": "http://x",
                                                  "allowed_tools": [[]]}]}, "tools[0].allowed_tools[0]"),
    ("tool_choice type a list", {"tool_choice": {"type": []}}, "tool_choice.type"),
    ("tool_choice name an object", {"tool_choice": {"type": "function", "name": {}}}, "tool_choice.name"),
    ("tool_choice unknown mode", {"tool_choice": "sometimes"}, "tool_choice"),
    ("allowed_tools entries not objects", {"tool_choice": {"type": "allowed_tools", "tools": [1, "a"]}},
     "tool_choice.tools[0]"),
    ("allowed_tools mode", {"tool_choice": {"type": "allowed_tools", "mode": 3, "tools": []}}, "tool_choice.mode"),
    ("prompt id a list", {"prompt": {"id": []}}, "prompt.id"),
    ("prompt variables a list", {"prompt": {"id": "pmpt_x", "variables": [1]}}, "prompt.variables"),
    ("conversation a number", {"conversation": 7}, "conversation"),
    ("conversation object id", {"conversation": {"id": []}}, "conversation.id"),
    ("max_output_tokens huge", {"max_output_tokens": 10**30}, "max_output_tokens"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "extra", "param"), TYPED, ids=[t[0] for t in TYPED])
def test_fields_are_typed_before_use(http: httpx.Client, name: str, extra: dict[str, Any], param: str):
    for stream in (False, True):
        body = {"model": "m", "input": "x", "stream": stream, **extra}
        _assert_400(http.post("/responses", json=body), param=param)
    _assert_400(http.post("/responses/input_tokens", json={"input": "x", **extra}), param=param)


def test_a_conversation_id_must_begin_with_conv(client: openai.OpenAI):
    for conversation in ("not-a-conv-id", {"id": "resp_123"}):
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model="m", input="x", conversation=conversation)  # type: ignore[arg-type]
        assert bad.value.param in ("conversation", "conversation.id")
        assert bad.value.code == "invalid_value" and "begins with 'conv'" in bad.value.message


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": 7}, "not valid JSON Schema"),
        ({"type": "string", "pattern": "("}, "regex"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not resolve"),
    ],
)
def test_a_strict_schema_that_is_no_schema_is_a_400_naming_it(client: openai.OpenAI, schema: Any, says: str):
    fmt: Any = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="m", input="x", text={"format": fmt})
    assert bad.value.param == "text.format.schema" and "'answer'" in bad.value.message and says in bad.value.message


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    """A server on loopback that would serve a schema to whoever fetched it, and records every fetch."""
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            fetched.append(self.path)
            body = b'{"type": "string", "description": "SECRET-FETCHED-CONTENT"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fetched
    finally:
        server.shutdown()
        server.server_close()


def test_no_ref_is_ever_fetched(http: httpx.Client, schema_host: tuple[str, list[str]], tmp_path: Any):
    url, fetched = schema_host
    local_file = tmp_path / "schema.json"
    local_file.write_text('{"type": "string", "description": "SECRET-FILE-CONTENT"}')
    for ref in (f"{url}/schema.json", local_file.as_uri(), f"{url}/schema.json#/type"):
        schema = {"type": "object", "properties": {"a": {"$ref": ref}}, "required": ["a"]}
        fmt = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
        body = {"model": "m", "input": 'REPLY {"a": 1}', "text": {"format": fmt}}
        for stream in (False, True):
            error = _assert_400(http.post("/responses", json={**body, "stream": stream}), param="text.format.schema")
            assert "SECRET" not in error["message"] and "not allowed" in error["message"]
        _assert_400(http.post("/responses/input_tokens", json=body), param="text.format.schema")
        # not strict: the schema goes to the model as it is, and nothing here resolves it either
        loose = {**body, "text": {"format": {**fmt, "strict": False}}}
        assert http.post("/responses", json=loose).status_code == 200
    assert fetched == []


def test_a_strict_schema_that_refers_to_itself_without_end_is_a_400(client: openai.OpenAI):
    for schema in ({"$ref": "#"}, {"anyOf": [{"type": "string"}, {"$ref": "#"}]}):
        fmt: Any = {"type": "json_schema", "name": "loop", "schema": schema, "strict": True}
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model="m", input='REPLY {"a": 1}', text={"format": fmt})
        assert bad.value.param == "text.format.schema" and "refers to itself without end" in bad.value.message
    # a recursive schema that does reach values is fine
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    fmt = {"type": "json_schema", "name": "tree", "schema": tree, "strict": True}
    response = client.responses.create(model="m", input='REPLY {"children": [{"children": []}]}', text={"format": fmt})
    assert response.status == "completed"


@pytest.mark.parametrize("path", ["/v1/%22", '/v1/"}', "/v1/a%5Cb", "/v1/responses/x/%22%7D/y", "/nope/%22"])
def test_the_gateway_404_is_json_for_any_path(stack: str, path: str):
    root = stack.removesuffix("/v1")
    for method in ("GET", "POST", "DELETE"):
        response = httpx.request(method, root + path)
        assert response.status_code == 404
        error = response.json()["error"]  # valid JSON whatever the path held
        assert error["type"] == "invalid_request_error" and error["message"].startswith("Invalid URL")
