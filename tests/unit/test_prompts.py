"""Prompt templates: sandboxed rendering, variables, merge precedence, the store on moto, the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidRequestError
from engine.models.request import ResponseCreateParams
from engine.responses import prompts
from engine.responses.prompts import merge_prompt, render_prompt, validate_template
from engine.settings import get_settings
from engine.storage.prompts import DynamoPromptStore as PromptStore
from tests.conftest import moto_table

TABLE = "prompts-unit"


def _echo(variables: Any = None) -> dict[str, Any]:
    return {"id": "pmpt_x", "version": "1", "variables": variables}


def _params(**fields: Any) -> ResponseCreateParams:
    return ResponseCreateParams.model_validate({"model": "m", "prompt": {"id": "pmpt_x"}, **fields})


def test_renders_instructions_and_input_messages():
    template = {
        "instructions": "You help {{ customer }} with {{ topic | upper }}.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Order {{ order }}"}]}],
        "variables": {"customer": None, "topic": "billing", "order": None},
    }
    instructions, messages = render_prompt(template, {"customer": "Ann", "order": {"type": "input_text", "text": "7"}})
    assert instructions == "You help Ann with BILLING."
    assert messages == [{"role": "user", "content": [{"type": "input_text", "text": "Order 7"}]}]


def test_variable_values_are_data_not_templates():
    instructions, _ = render_prompt({"instructions": "Hi {{ name }}"}, {"name": "{{ 7 * 7 }}"})
    assert instructions == "Hi {{ 7 * 7 }}"


def test_undefined_variable_is_a_400_naming_it():
    with pytest.raises(InvalidRequestError) as caught:
        render_prompt({"instructions": "Hi {{ name }}, about {{ topic }}"}, {"name": "Ann"})
    assert caught.value.param == "prompt.variables"
    assert "'topic'" in caught.value.message


def test_unknown_variable_is_a_400_when_the_template_declares_its_variables():
    with pytest.raises(InvalidRequestError) as caught:
        render_prompt({"instructions": "Hi {{ name }}", "variables": ["name"]}, {"name": "a", "other": "b"})
    assert caught.value.param == "prompt.variables" and "'other'" in caught.value.message


def test_variable_of_the_wrong_shape_is_a_400():
    with pytest.raises(InvalidRequestError) as caught:
        render_prompt({"instructions": "Hi {{ name }}"}, {"name": 3})
    assert caught.value.param == "prompt.variables"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% set x = [] %}{{ x.append(1) }}",
        "{{ {}.update(a=1) }}",
    ],
)
def test_sandbox_escapes_are_400s(source: str):
    with pytest.raises(InvalidRequestError) as caught:
        render_prompt({"instructions": source}, {"name": "n"})
    assert caught.value.status_code == 400 and caught.value.param == "prompt"
    assert "unsafe" in caught.value.message


def test_image_and_file_variables_are_attached_to_the_last_user_message():
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}
    template = {"input": [{"role": "user", "content": "Describe {{ pic }}this"}]}
    _, messages = render_prompt(template, {"pic": image})
    assert messages == [{"role": "user", "content": [{"type": "input_text", "text": "Describe this"}, image]}]
    _, alone = render_prompt({"instructions": "Look."}, {"pic": image})
    assert alone == [{"role": "user", "content": [image]}]


def test_merge_template_fields_are_defaults():
    template = {
        "instructions": "Be {{ tone }}.",
        "input": [{"role": "developer", "content": "Rules for {{ tone }}"}],
        "temperature": 0.2,
        "max_output_tokens": 100,
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}],
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
    }
    merged = merge_prompt(_params(input="question"), template, _echo({"tone": "terse"}))
    assert merged.instructions == "Be terse."
    data = merged.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert [(m["role"], m["content"]) for m in data["input"]] == [
        ("developer", "Rules for terse"),
        ("user", "question"),
    ]
    assert (merged.temperature, merged.max_output_tokens, merged.top_p) == (0.2, 100, None)
    assert merged.tools is not None and merged.tools[0]["name"] == "lookup"
    assert merged.text is not None and merged.text.format.type == "json_schema"
    assert merged.prompt == _echo({"tone": "terse"})
    # applied once: a background job's stored params (exclude_unset) do not carry the prompt again
    assert "prompt" not in data


def test_merge_request_fields_win():
    template = {
        "instructions": "template instructions",
        "temperature": 0.2,
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}],
        "text": {"format": {"type": "json_object"}},
    }
    params = _params(
        input=[{"role": "user", "content": "q"}],
        instructions="mine",
        temperature=0.9,
        tools=[],
        text={"format": {"type": "text"}},
    )
    merged = merge_prompt(params, template, _echo())
    assert merged.instructions == "mine"
    assert merged.temperature == 0.9
    assert merged.tools == []
    assert merged.text is not None and merged.text.format.type == "text"


def test_merge_reports_an_invalid_template_as_a_400():
    with pytest.raises(InvalidRequestError) as caught:
        merge_prompt(_params(input="q"), {"instructions": "x", "temperature": "hot"}, _echo())
    assert caught.value.param == "prompt"


def test_validate_template():
    assert validate_template({"instructions": "Hi {{ a }}", "variables": ["a"]})
    bads: list[Any] = [
        [],
        {"instructions": "x", "colour": "red"},
        {"temperature": 1.0},
        {"instructions": "{{ unclosed"},
        {"instructions": "x", "max_output_tokens": 1},
    ]
    for bad in bads:
        with pytest.raises(ValueError):
            validate_template(bad)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[PromptStore]:
    with moto_table(monkeypatch, TABLE):
        yield PromptStore(TABLE)


def test_store_versions_and_default(store: PromptStore):
    assert store.create("pmpt_a", {"instructions": "v1"}) == 1
    assert store.create("pmpt_a", {"instructions": "v2"}) == 2
    assert store.resolve("pmpt_a", None) == (1, {"instructions": "v1"})
    assert store.resolve("pmpt_a", 2) == (2, {"instructions": "v2"})
    store.set_default("pmpt_a", 2)
    assert store.resolve("pmpt_a", None)[0] == 2
    assert store.create("pmpt_a", {"instructions": "v3"}, make_default=True) == 3
    assert store.resolve("pmpt_a", None)[0] == 3
    with pytest.raises(LookupError, match="Version '9' of prompt 'pmpt_a' not found"):
        store.resolve("pmpt_a", 9)
    with pytest.raises(LookupError, match="Prompt with id 'nope' not found"):
        store.resolve("nope", None)
    with pytest.raises(LookupError):
        store.set_default("pmpt_a", 9)
    assert [(m["id"], m["default_version"], m["latest_version"]) for m in store.list_prompts()] == [("pmpt_a", 3, 3)]


def test_apply_prompt_unknown_id_and_version(store: PromptStore, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(prompts, "get_prompt_store", lambda: store)
    store.create("pmpt_a", {"instructions": "Hi {{ who }}"})
    applied = asyncio.run(prompts.apply_prompt(_params(prompt={"id": "pmpt_a", "variables": {"who": "x"}}), "t"))
    assert applied.instructions == "Hi x" and applied.prompt == {
        "id": "pmpt_a",
        "version": "1",
        "variables": {"who": "x"},
    }
    for prompt, message in (
        ({"id": "nope"}, "Prompt with id 'nope' not found."),
        ({"id": "pmpt_a", "version": "4"}, "Version '4' of prompt 'pmpt_a' not found."),
        ({"id": "pmpt_a", "version": "latest"}, "Version 'latest' of prompt 'pmpt_a' not found."),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            asyncio.run(prompts.apply_prompt(_params(prompt=prompt), "t"))
        assert (caught.value.param, caught.value.message) == ("prompt", message)


def test_cli(store: PromptStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"instructions": "Hi {{ who }}", "variables": ["who"]}))
    assert prompts.main(["--table", TABLE, "create", "--id", "pmpt_c", "--file", str(path)]) == 0
    assert prompts.main(["--table", TABLE, "create", "--id", "pmpt_c", "--file", str(path), "--default"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"id": "pmpt_c", "version": "2"}
    assert prompts.main(["--table", TABLE, "set-default", "pmpt_c", "1"]) == 0
    assert prompts.main(["--table", TABLE, "show", "pmpt_c"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["version"] == "1"
    assert prompts.main(["--table", TABLE, "list"]) == 0
    assert json.loads(capsys.readouterr().out)["latest_version"] == 2
    assert prompts.main(["--table", TABLE, "show", "pmpt_c", "--version", "5"]) == 1
    path.write_text(json.dumps({"instructions": "{{ broken"}))
    assert prompts.main(["--table", TABLE, "create", "--id", "pmpt_c", "--file", str(path)]) == 1


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        ("{{ range(10**9)|list|length }}", "range() in a prompt template is limited to 10000 items"),
        ("{% for i in range(10**6) %}{% endfor %}", "range() in a prompt template is limited to 10000 items"),
        ("{{ 2**100000 }}", "'**' in a prompt template is limited to 4096-bit results"),
        ("{{ (10**300) * (10**300) * (10**300) * (10**300) * (10**300) }}", "4096-bit results"),
        ("{{ 'a' * 10**7 }}", "output limit"),
        ("{{ ['x'] * 10**7 }}", "output limit"),
        ("{% for i in range(9999) %}{{ 'abcdefghij' * 30 }}{% endfor %}", "limited to 200000 characters"),
    ],
)
def test_rendering_is_bounded(source: str, limit: str):
    with pytest.raises(InvalidRequestError) as exc:
        render_prompt({"instructions": source}, {})
    assert exc.value.status_code == 400 and exc.value.code == "prompt_limit_exceeded" and limit in exc.value.message


def test_rendering_time_is_bounded_even_when_nothing_is_output(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROMPT_RENDER_SECONDS", "0.3")
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        with pytest.raises(InvalidRequestError) as exc:
            render_prompt(
                {"instructions": "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"}, {}
            )
        assert "limited to 0.3 s" in exc.value.message and time.monotonic() - started < 2
    finally:
        get_settings.cache_clear()


def test_a_template_failing_on_its_own_is_a_400_not_a_500():
    for source in ("{{ 1 // 0 }}", "{{ 10**400 * 1.0 }}", "{{ '%d' % 'x' }}"):
        with pytest.raises(InvalidRequestError):
            render_prompt({"instructions": source}, {})


def test_bounded_templates_still_render():
    instructions, _ = render_prompt({"instructions": "{% for i in range(3) %}{{ i * 2 }}{% endfor %} {{ 2**10 }}"}, {})
    assert instructions == "024 1024"
