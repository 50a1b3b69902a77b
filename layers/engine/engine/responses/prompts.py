"""Reusable prompt templates (``prompt: {id, version, variables}`` on create).

Templates belong to the deployment, not to a tenant: the deployment owner manages them with
``python -m engine.responses.prompts`` (create / list / show / set-default) and every tenant may reference any
of them by id. They live in the responses table (layout: ``engine.storage.prompts``).

A version is a JSON object: ``instructions`` (a Jinja2 template) and/or ``input`` (messages whose text is a
Jinja2 template), ``temperature`` / ``top_p`` / ``max_output_tokens``, ``tools``, ``text`` and ``variables``
(declared names: a list of names, or an object of name -> default, ``null`` meaning required). A ``model`` may be
stored but is informational: requests must name their model (the SDK always sends one).

Rendering runs in Jinja2's immutable sandbox with ``StrictUndefined`` and no autoescaping. Variable values are
data, never templates. A variable is a string or an ``input_text`` / ``input_image`` / ``input_file`` part: a
text part renders as its text; an image or file part renders as nothing and is attached as a part to the last
rendered user message (or to a user message of its own when the template has none).

Merging: template fields are defaults and the request's fields win. ``instructions``: the request's replace the
template's. ``input``: the template's messages first, then the request's input. ``tools``: the request's, when
given, replace the template's. ``text``: the template's unless the request sets ``text``. Sampling settings: the
template's unless the request sets them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.errors import InvalidRequestError
from engine.models.request import ResponseCreateParams
from engine.responses.template_limits import TemplateLimitError, bounded_environment, render_bounded
from engine.settings import get_settings
from engine.storage import get_prompt_store
from engine.storage.prompts import PromptNotFound

if TYPE_CHECKING:
    from jinja2 import Template

__all__ = ["apply_prompt", "render_prompt", "validate_template"]

_TEMPLATE_KEYS = frozenset(
    {"instructions", "input", "model", "temperature", "top_p", "max_output_tokens", "tools", "text", "variables"}
)
_SAMPLING = ("temperature", "top_p", "max_output_tokens")
_ATTACHMENTS = ("input_image", "input_file")


# --- rendering ---------------------------------------------------------------------------------------------


def _environment() -> Any:
    return bounded_environment()  # Jinja2's immutable sandbox, with range and arithmetic bounded


@lru_cache(maxsize=512)
def _compile(source: str) -> Template:
    return _environment().from_string(source)


def _render(source: str, values: dict[str, str], where: str) -> str:
    from jinja2 import TemplateError, UndefinedError
    from jinja2.sandbox import SecurityError

    try:
        return render_bounded(_compile(source), values)
    except TemplateLimitError as exc:
        raise InvalidRequestError(
            f"The prompt template's {where} went past a limit: {exc}.", param="prompt", code="prompt_limit_exceeded"
        ) from None
    except SecurityError as exc:
        raise InvalidRequestError(f"The prompt template's {where} is not allowed: {exc}", param="prompt") from None
    except UndefinedError as exc:
        match = re.match(r"'([^']+)' is undefined", str(exc))
        if match:
            raise InvalidRequestError(
                f"Missing prompt variable '{match.group(1)}' (used by the template's {where}).",
                param="prompt.variables",
            ) from None
        raise InvalidRequestError(f"The prompt template's {where} failed: {exc}", param="prompt.variables") from None
    except TemplateError as exc:
        raise InvalidRequestError(f"The prompt template's {where} failed: {exc}", param="prompt") from None
    except Exception as exc:  # the template's own arithmetic or filters failing (a division by zero, say): a 400
        raise InvalidRequestError(
            f"The prompt template's {where} failed: {type(exc).__name__}: {str(exc)[:200]}", param="prompt"
        ) from None


def _declared(template: dict[str, Any]) -> dict[str, str | None] | None:
    """Declared variables and their defaults (None: required); None when the template declares none."""
    declared = template.get("variables")
    if declared is None:
        return None
    if isinstance(declared, list):
        return {str(name): None for name in declared}
    return {str(name): (None if default is None else str(default)) for name, default in dict(declared).items()}


def _variables(template: dict[str, Any], given: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Rendering values and the image/file parts to attach."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidRequestError("prompt.variables must be an object.", param="prompt.variables")
    declared = _declared(template)
    values: dict[str, str] = {}
    if declared is not None:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise InvalidRequestError(f"Unknown prompt variable '{unknown[0]}'.", param="prompt.variables")
        values.update({name: default for name, default in declared.items() if default is not None})
    attachments: list[dict[str, Any]] = []
    for name, value in given.items():
        if isinstance(value, str):
            values[name] = value
        elif isinstance(value, dict) and value.get("type") == "input_text" and isinstance(value.get("text"), str):
            values[name] = value["text"]
        elif isinstance(value, dict) and value.get("type") in _ATTACHMENTS:
            values[name] = ""
            attachments.append(dict(value))
        else:
            raise InvalidRequestError(
                f"Prompt variable '{name}' must be a string or an input_text, input_image or input_file part.",
                param="prompt.variables",
            )
    return values, attachments


def _render_content(content: Any, values: dict[str, str], where: str) -> Any:
    if isinstance(content, str):
        return _render(content, values, where)
    parts: list[Any] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text") and "text" in part:
            part = {**part, "text": _render(str(part["text"]), values, where)}
        parts.append(part)
    return parts


def render_prompt(template: dict[str, Any], given: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """The template's rendered instructions and input messages, with ``given`` variables."""
    values, attachments = _variables(template, given)
    instructions = template.get("instructions")
    rendered = None if instructions is None else _render(str(instructions), values, "instructions")
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(template.get("input") or []):
        content = _render_content(message.get("content", ""), values, f"input[{index}]")
        messages.append({**message, "content": content})
    if attachments:
        users = [m for m in messages if m.get("role") == "user"]
        if users:
            target = users[-1]
            content = target["content"]
            if isinstance(content, str):
                content = [{"type": "input_text", "text": content}] if content else []
            target["content"] = [*content, *attachments]
        else:
            messages.append({"role": "user", "content": attachments})
    return rendered, messages


def validate_template(template: Any) -> dict[str, Any]:
    """``template`` checked as a stored version (the CLI runs this before creating one); ``ValueError``."""
    if not isinstance(template, dict):
        raise ValueError("a prompt template is a JSON object")
    unknown = sorted(set(template) - _TEMPLATE_KEYS)
    if unknown:
        raise ValueError(f"unknown template field {unknown[0]!r} (allowed: {', '.join(sorted(_TEMPLATE_KEYS))})")
    if template.get("instructions") is None and not template.get("input"):
        raise ValueError("a prompt template needs 'instructions' and/or 'input'")
    variables = template.get("variables")
    if variables is not None and not isinstance(variables, list | dict):
        raise ValueError("'variables' is a list of names or an object of name -> default")
    from jinja2 import TemplateSyntaxError

    try:
        if template.get("instructions") is not None:
            _compile(str(template["instructions"]))
        for message in template.get("input") or []:
            content = message.get("content")
            for text in [content] if isinstance(content, str) else [p.get("text") for p in content or []]:
                if isinstance(text, str):
                    _compile(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error: {exc}") from None
    fields = {k: template[k] for k in ("input", "tools", "text", *_SAMPLING) if template.get(k) is not None}
    try:
        ResponseCreateParams.model_validate({"model": str(template.get("model") or "m"), **fields})
    except ValidationError as exc:
        raise ValueError(f"invalid template: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    return template


# --- the request -------------------------------------------------------------------------------------------


def _requested_version(prompt: dict[str, Any]) -> int | None:
    version = prompt.get("version")
    if version is None:
        return None
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise InvalidRequestError(
            f"Version '{version}' of prompt '{prompt.get('id')}' not found.", param="prompt", code="not_found"
        )
    return int(text)


def merge_prompt(params: ResponseCreateParams, template: dict[str, Any], echo: dict[str, Any]) -> ResponseCreateParams:
    """``params`` with ``template`` rendered and merged in (the request's fields win)."""
    instructions, messages = render_prompt(template, echo.get("variables"))
    data = params.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if params.instructions is None and instructions is not None:
        data["instructions"] = instructions
    if messages:
        request_input = data.get("input")
        if isinstance(request_input, str):
            request_input = [{"role": "user", "content": request_input}]
        data["input"] = [*messages, *(request_input or [])]
    if params.tools is None and template.get("tools") is not None:
        data["tools"] = template["tools"]
    if params.text is None and template.get("text") is not None:
        data["text"] = template["text"]
    for name in _SAMPLING:
        if getattr(params, name) is None and template.get(name) is not None:
            data[name] = template[name]
    data["prompt"] = echo
    try:
        merged = ResponseCreateParams.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InvalidRequestError(
            f"The prompt template, applied to this request, is invalid at '{where}': {error['msg']}", param="prompt"
        ) from None
    # The Response echoes ``prompt``, but the merged request is already the applied one: leaving ``prompt`` out
    # of the set fields keeps it out of a background job's stored params, so the worker does not apply it twice.
    merged.__pydantic_fields_set__.discard("prompt")
    return merged


async def apply_prompt(params: ResponseCreateParams, tenant: str) -> ResponseCreateParams:
    """The request with its prompt template applied (request fields override the template's).

    Templates are global to the deployment, so ``tenant`` does not scope the lookup."""
    prompt = params.prompt
    if prompt is None or "prompt" not in params.model_fields_set:
        return params
    prompt_id = prompt.get("id")
    if not isinstance(prompt_id, str) or not prompt_id:
        raise InvalidRequestError("prompt.id is required.", param="prompt.id", code="missing_required_parameter")
    version = _requested_version(prompt)
    try:
        resolved, template = await asyncio.to_thread(get_prompt_store().resolve, prompt_id, version)
    except PromptNotFound as exc:
        raise InvalidRequestError(str(exc), param="prompt", code="not_found") from None
    echo = {"id": prompt_id, "version": str(resolved), "variables": prompt.get("variables")}
    # rendered on a worker thread: a slow template (within its time limit) never stalls other requests
    return await asyncio.to_thread(merge_prompt, params, template, echo)


# --- the owner's CLI ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.responses.prompts",
        description="Manage the deployment's prompt templates (global to tenants).",
    )
    parser.add_argument("--table", help="DynamoDB table (default: TABLE_NAME)")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="store a template file as the prompt's next version")
    make.add_argument("--id", required=True, dest="prompt_id", help="the prompt id, e.g. pmpt_support")
    make.add_argument("--file", required=True, help="the template version, a JSON file ('-' for stdin)")
    make.add_argument("--default", action="store_true", help="make this version the default")
    listing = commands.add_parser("list", help="list prompts (JSON lines)")
    listing.set_defaults(prompt_id=None)
    show = commands.add_parser("show", help="print a version (the default one unless --version)")
    show.add_argument("prompt_id")
    show.add_argument("--version", type=int)
    default = commands.add_parser("set-default", help="make an existing version the default")
    default.add_argument("prompt_id")
    default.add_argument("version", type=int)
    args = parser.parse_args(argv)

    store = get_prompt_store(args.table or get_settings().table_name)
    try:
        if args.command == "create":
            if not args.prompt_id.strip():
                parser.error("--id must not be empty")
            with open(args.file) if args.file != "-" else sys.stdin as handle:
                template = validate_template(json.load(handle))
            version = store.create(args.prompt_id.strip(), template, args.default)
            print(json.dumps({"id": args.prompt_id.strip(), "version": str(version)}))
        elif args.command == "list":
            for meta in store.list_prompts():
                print(json.dumps(meta))
        elif args.command == "show":
            resolved, template = store.resolve(args.prompt_id, args.version)
            print(json.dumps({"id": args.prompt_id, "version": str(resolved), "template": template}, indent=2))
        else:
            store.set_default(args.prompt_id, args.version)
            print(json.dumps({"id": args.prompt_id, "default_version": str(args.version)}))
    except (LookupError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
