"""Prompt templates end to end: versions created with the owner's CLI in the stack's table, then
``prompt: {id, version, variables}`` through the official client against the scripted model."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import UpstreamLog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prompts_cli(stack: str, tmp_path: Path):
    health = httpx.get(stack.removesuffix("/v1") + "/_local/health").json()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "layers" / "engine"),
        "TABLE_NAME": health["table_name"],
        "AWS_ENDPOINT_URL": health["aws_endpoint_url"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }

    def run(*argv: str, template: dict[str, Any] | None = None) -> str:
        if template is not None:
            path = tmp_path / f"{uuid.uuid4().hex}.json"
            path.write_text(json.dumps(template))
            argv = (*argv, "--file", str(path))
        done = subprocess.run(
            [sys.executable, "-m", "engine.responses.prompts", *argv],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    return run


TEMPLATE_V1 = {
    "instructions": "You are {{ persona }}. Answer in {{ language }}.",
    "input": [{"role": "developer", "content": "Customer: {{ customer }}"}],
    "variables": {"persona": None, "language": "English", "customer": None},
    "temperature": 0.25,
}
TEMPLATE_V2 = {**TEMPLATE_V1, "instructions": "v2: {{ persona }}"}


def _new_prompt(prompts_cli: Any) -> str:
    prompt_id = f"pmpt_{uuid.uuid4().hex[:12]}"
    assert json.loads(prompts_cli("create", "--id", prompt_id, template=TEMPLATE_V1)) == {
        "id": prompt_id,
        "version": "1",
    }
    assert json.loads(prompts_cli("create", "--id", prompt_id, template=TEMPLATE_V2))["version"] == "2"
    return prompt_id


def test_prompt_renders_merges_and_echoes(client: openai.OpenAI, upstream: UpstreamLog, prompts_cli: Any):
    prompt_id = _new_prompt(prompts_cli)
    variables: dict[str, Any] = {"persona": "a librarian", "customer": {"type": "input_text", "text": "Ann"}}
    response = client.responses.create(model="m", prompt={"id": prompt_id, "variables": variables}, input="hello")
    assert response.status == "completed"
    assert upstream.last_messages() == [
        {"role": "system", "content": "You are a librarian. Answer in English."},
        {"role": "system", "content": "Customer: Ann"},
        {"role": "user", "content": "hello"},
    ]
    assert upstream.requests()[-1]["body"]["temperature"] == 0.25
    assert response.instructions == "You are a librarian. Answer in English."
    assert response.temperature == 0.25
    assert response.prompt is not None
    assert response.prompt.model_dump(exclude_none=True)["id"] == prompt_id
    assert response.prompt.version == "1"
    assert response.model_dump(exclude_none=True)["prompt"]["variables"] == variables
    # stored, so retrieving it echoes the prompt too
    assert client.responses.retrieve(response.id).prompt == response.prompt


def test_explicit_version_and_set_default(client: openai.OpenAI, upstream: UpstreamLog, prompts_cli: Any):
    prompt_id = _new_prompt(prompts_cli)
    variables: dict[str, Any] = {"persona": "p", "customer": "c"}
    response = client.responses.create(model="m", prompt={"id": prompt_id, "version": "2", "variables": variables})
    assert upstream.last_messages()[0] == {"role": "system", "content": "v2: p"}
    assert response.prompt is not None and response.prompt.version == "2"
    prompts_cli("set-default", prompt_id, "2")
    response = client.responses.create(model="m", prompt={"id": prompt_id, "variables": variables}, input="x")
    assert response.prompt is not None and response.prompt.version == "2"
    assert upstream.last_messages()[0] == {"role": "system", "content": "v2: p"}
    shown = json.loads(prompts_cli("show", prompt_id))
    assert shown["version"] == "2" and shown["template"] == TEMPLATE_V2


def test_request_fields_override_the_template(client: openai.OpenAI, upstream: UpstreamLog, prompts_cli: Any):
    prompt_id = _new_prompt(prompts_cli)
    response = client.responses.create(
        model="m",
        prompt={"id": prompt_id, "variables": {"persona": "p", "customer": "c"}},
        instructions="mine",
        temperature=0.9,
        input="q",
    )
    assert response.instructions == "mine" and response.temperature == 0.9
    assert upstream.last_messages()[0] == {"role": "system", "content": "mine"}
    assert upstream.requests()[-1]["body"]["temperature"] == 0.9


def test_unknown_prompt_or_version_is_a_400(client: openai.OpenAI, prompts_cli: Any):
    prompt_id = _new_prompt(prompts_cli)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", prompt={"id": "pmpt_missing"}, input="x")
    assert caught.value.body["param"] == "prompt"  # type: ignore[index]
    assert caught.value.body["message"] == "Prompt with id 'pmpt_missing' not found."  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", prompt={"id": prompt_id, "version": "7"}, input="x")
    assert caught.value.body["message"] == f"Version '7' of prompt '{prompt_id}' not found."  # type: ignore[index]


def test_missing_variable_is_a_400_naming_it(client: openai.OpenAI, prompts_cli: Any):
    prompt_id = _new_prompt(prompts_cli)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", prompt={"id": prompt_id, "variables": {"persona": "p"}}, input="x")
    assert caught.value.body["param"] == "prompt.variables"  # type: ignore[index]
    assert "'customer'" in caught.value.body["message"]  # type: ignore[index]


def test_prompt_in_a_background_response_is_applied_once(
    client: openai.OpenAI, upstream: UpstreamLog, prompts_cli: Any
):
    prompt_id = _new_prompt(prompts_cli)
    variables: dict[str, Any] = {"persona": "p", "customer": "c"}
    queued = client.responses.create(
        model="m", prompt={"id": prompt_id, "variables": variables}, input="bg", background=True
    )
    assert queued.prompt is not None and queued.prompt.version == "1"
    for _ in range(200):
        done = client.responses.retrieve(queued.id)
        if done.status not in ("queued", "in_progress"):
            break
        time.sleep(0.05)
    assert done.status == "completed"
    assert done.prompt == queued.prompt
    assert upstream.last_messages() == [
        {"role": "system", "content": "You are p. Answer in English."},
        {"role": "system", "content": "Customer: c"},
        {"role": "user", "content": "bg"},
    ]


def test_template_limits_are_400s_naming_them(client: openai.OpenAI, prompts_cli: Any):
    cases = {
        "{{ range(n|int)|list|length }}": "range() in a prompt template is limited to 10000 items",
        "{{ 2 ** (n|int) }}": "4096-bit results",
        "{{ 'a' * (n|int) }}": "output limit",
    }
    for source, limit in cases.items():
        prompt_id = f"pmpt_{uuid.uuid4().hex[:12]}"
        prompts_cli("create", "--id", prompt_id, template={"instructions": source, "variables": ["n"]})
        with pytest.raises(openai.BadRequestError) as exc:
            client.responses.create(model="m", prompt={"id": prompt_id, "variables": {"n": "1000000000"}})
        assert exc.value.code == "prompt_limit_exceeded" and limit in exc.value.message and exc.value.param == "prompt"
        # within the limits the same template renders
        assert (
            client.responses.create(model="m", prompt={"id": prompt_id, "variables": {"n": "3"}}).status == "completed"
        )


def test_a_slow_template_does_not_stall_other_requests(stack: str, prompts_cli: Any):
    # nested loops that output nothing: about the whole 1 s time budget, then a 400
    slow = "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"
    prompt_id = f"pmpt_{uuid.uuid4().hex[:12]}"
    prompts_cli("create", "--id", prompt_id, template={"instructions": slow})

    def slow_request() -> tuple[int, float]:
        started = time.monotonic()
        response = httpx.post(f"{stack}/responses", json={"model": "m", "prompt": {"id": prompt_id}}, timeout=30)
        return response.status_code, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(slow_request)
        time.sleep(0.2)  # the template is rendering now
        started = time.monotonic()
        quick = httpx.post(f"{stack}/responses", json={"model": "m", "input": "hi"}, timeout=30)
        quick_seconds = time.monotonic() - started
        status, slow_seconds = pending.result()
    assert quick.status_code == 200 and status == 400
    assert slow_seconds >= 0.9  # it did render for about its budget...
    assert quick_seconds < slow_seconds - 0.3  # ...while the other request was answered
