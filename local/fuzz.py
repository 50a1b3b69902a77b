"""``make fuzz``: schemathesis against the local stack's own ``GET /v1/openapi.json``, plus malformed bodies.

Every operation of the document gets ``cases`` generated requests (schema-valid and schema-violating, half each,
from a fixed seed, so a run is repeatable), and every route that reads a body also gets a fixed list of
malformed ones (broken JSON, a BOM, deep nesting, huge numbers, wrong content types, non-UTF-8 bytes) and odd
paths for the gateway's 404. The only check is the one the API promises: bad input is an OpenAI-shaped 4xx, never
a 5xx or a dropped connection. A create that ran and ended ``failed`` (the scripted model's echo breaks a requested
JSON format, say) is answered with its error's status, as OpenAI does, and names its stored response in
``x-response-id``: those are counted apart, as model faults, not bad input. Targets 127.0.0.1 only (the stack
this command starts, with the scripted model).

    python -m local.fuzz --cases 10000 --seed 1          # prints a table; exit 1 when any 5xx was answered
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

__all__ = ["FuzzReport", "MALFORMED_BODIES", "fuzz", "main"]

# Raw bodies no client library would send; each goes to every route that reads a body, with each content type.
MALFORMED_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"model": "m", "input": '),
    ("bom", b'\xef\xbb\xbf{"model": "m", "input": "x"}'),
    ("not utf-8", b'{"model": "m", "input": "\xff\xfe"}'),
    ("nul bytes", b'{"model": "m\x00", "input": "\x00"}'),
    ("array", b"[1, 2, 3]"),
    ("string", b'"hello"'),
    ("null", b"null"),
    ("number", b"1e999999"),
    ("huge integer", b'{"model": "m", "input": "x", "max_output_tokens": ' + b"9" * 5000 + b"}"),
    ("huge float", b'{"model": "m", "input": "x", "temperature": 1e999999}'),
    ("nan", b'{"model": "m", "input": "x", "temperature": NaN}'),
    ("deep arrays", b'{"model": "m", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("deep objects", b'{"model": "m", "metadata": ' + b'{"a":' * 20_000 + b"1" + b"}" * 20_000 + b"}"),
    ("deep input", b'{"model":"m","input":[{"role":"user","content":' + b"[" * 5000 + b"]" * 5000 + b"}]}"),
    ("duplicate keys", b'{"model": "m", "model": 1, "input": "x"}'),
    ("lone surrogate", b'{"model": "m", "input": "\\ud800"}'),
    ("tools not a list", b'{"model": "m", "input": "x", "tools": {"type": "function"}}'),
    ("tool a string", b'{"model": "m", "input": "x", "tools": ["function"]}'),
    ("tool type a list", b'{"model": "m", "input": "x", "tools": [{"type": ["function"]}]}'),
    ("tool type a dict", b'{"model": "m", "input": "x", "tools": [{"type": {"a": 1}}]}'),
    ("function not a dict", b'{"model": "m", "input": "x", "tools": [{"type": "function", "function": "f"}]}'),
    ("tool_choice type a list", b'{"model": "m", "input": "x", "tool_choice": {"type": []}}'),
    ("tool_choice name a dict", b'{"model": "m", "input": "x", "tool_choice": {"type": "function", "name": {}}}'),
    ("allowed_tools entries", b'{"model":"m","input":"x","tool_choice":{"type":"allowed_tools","tools":[1,"a"]}}'),
    ("namespace members", b'{"model":"m","input":"x","tools":[{"type":"namespace","name":"n","tools":[1]}]}'),
    ("mcp allowed dict", b'{"model":"m","input":"x","tools":[{"type":"mcp","server_url":"http://127.0.0.1:1",'
     b'"server_label":"s","allowed_tools":{"tool_names":[[]]}}]}'),
    ("format schema a list", b'{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n",'
     b'"schema":[],"strict":true}}}'),
    ("format schema bad", b'{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n",'
     b'"schema":{"type":7},"strict":true}}}'),
    ("format ref http", b'{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n",'
     b'"schema":{"$ref":"http://127.0.0.1:9/x.json"},"strict":true}}}'),
    ("conversation a number", b'{"model": "m", "input": "x", "conversation": 7}'),
    ("conversation id bad", b'{"model": "m", "input": "x", "conversation": "not-a-conv-id"}'),
    ("conversation dict bad", b'{"model": "m", "input": "x", "conversation": {"id": []}}'),
    ("prompt id a list", b'{"model": "m", "input": "x", "prompt": {"id": []}}'),
    ("prompt variables", b'{"model": "m", "input": "x", "prompt": {"id": "pmpt_x", "variables": [1]}}'),
    ("items not a list", b'{"items": {"type": "message"}}'),
    ("items bad", b'{"items": [1, "a", null]}'),
    ("metadata nested", b'{"metadata": {"a": {"b": 1}}}'),
]  # fmt: skip
_ID = "x-response-id"  # names the stored response of a failed foreground create
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
ODD_PATHS = ["/v1/%22", '/v1/"', "/v1/%5C", "/v1/responses/%22%7D", "/v1/\\u0000", "/v1/%E2%80%A8", "/nope/%22x"]


@dataclass
class FuzzReport:
    """What the fuzzer sent and what came back."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    not_enveloped: list[dict[str, Any]] = field(default_factory=list)
    by_operation: Counter[str] = field(default_factory=Counter)
    unsendable: int = 0
    failed_responses: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self, label: str, method: str, url: str, status: int | None, body: bytes, sent: Any, response_id: str | None
    ) -> None:
        self.requests += 1
        if status is None:
            self.dropped.append({"operation": label, "url": url, "sent": _short(sent)})
            return
        self.statuses[status] += 1
        if status >= 500 and response_id:
            # a response that ran and was stored failed (the scripted model's answer broke the requested format,
            # say), answered with its error's status as OpenAI does: a model fault by design, not bad input
            self.failed_responses.append({"operation": label, "status": status, "response_id": response_id,
                                          "body": _short(body)})  # fmt: skip
        elif status >= 500:
            self.by_operation[label.split(" [")[0]] += 1
            self.server_errors.append(
                {"operation": label, "status": status, "url": url, "sent": _short(sent), "body": _short(body)}
            )
        elif status >= 400 and not _is_envelope(body):
            self.not_enveloped.append({"operation": label, "status": status, "url": url, "body": _short(body)})

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "5xx": len(self.server_errors),
            "dropped": len(self.dropped),
            "non_envelope_4xx": len(self.not_enveloped),
            "unsendable": self.unsendable,
            "failed_responses_answered_5xx": len(self.failed_responses),
            "statuses": dict(sorted(self.statuses.items())),
            "5xx_by_operation": dict(self.by_operation.most_common()),
        }


def _short(value: Any, limit: int = 300) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"…(+{len(text) - limit})"


def _is_envelope(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
        return isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)
    except (ValueError, KeyError, TypeError):
        return False


def _send(client: httpx.Client, report: FuzzReport, label: str, method: str, url: str, **kwargs: Any) -> None:
    try:
        response = client.request(method, url, **kwargs)
        sent = kwargs.get("content") or kwargs
        report.record(label, method, url, response.status_code, response.content, sent, response.headers.get(_ID))
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
        report.unsendable += 1  # an HTTP client cannot send it (a header with a newline, say): not a server fault
    except httpx.HTTPError as exc:
        report.record(label, method, url, None, b"", {"error": repr(exc), **kwargs}, None)


def _schema_cases(
    client: httpx.Client, base_url: str, report: FuzzReport, cases: int, seed: int, progress: Callable[[str], None]
) -> None:
    """``cases`` requests per operation from schemathesis' strategies, half valid and half not."""
    import schemathesis

    schema = schemathesis.openapi.from_dict(client.get(f"{base_url}/openapi.json").json())
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # the document is ours: every operation loads
        _fuzz_operation(client, base_url, report, operation, cases, seed)
        label = f"{operation.method.upper()} {operation.path}"
        progress(f"{label}: {report.requests} requests so far, {len(report.server_errors)} 5xx")


def _fuzz_operation(
    client: httpx.Client, base_url: str, report: FuzzReport, operation: Any, cases: int, seed: int
) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from schemathesis import GenerationMode

    label = f"{operation.method.upper()} {operation.path}"
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(generation_mode=mode)

        @hypothesis_seed(seed)
        @settings(
            max_examples=max(1, cases // 2),
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=False,
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url=base_url)
            url = kwargs.pop("url")
            method = kwargs.pop("method")
            body = kwargs.pop("json", None)
            data = kwargs.pop("data", None)
            content = json.dumps(body).encode() if body is not None else data
            if isinstance(content, str):
                content = content.encode()
            headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
            params = kwargs.get("params")
            _send(client, report, label, method, url, content=content, headers=headers, params=params)

        run()


def _malformed_cases(client: httpx.Client, base_url: str, report: FuzzReport, content_types: list[str]) -> None:
    """Every malformed body to every route with a body, with every content type; odd paths for the 404."""
    routes = [
        ("POST", "/responses"),
        ("POST", "/responses/input_tokens"),
        ("POST", "/conversations"),
        ("POST", "/conversations/conv_fuzz"),
        ("POST", "/conversations/conv_fuzz/items"),
    ]
    for method, path in routes:
        for name, body in MALFORMED_BODIES:
            for content_type in content_types:
                headers = {"content-type": content_type} if content_type else {}
                _send(
                    client, report, f"{method} {path} [{name}]", method, base_url + path, content=body, headers=headers
                )
    root = base_url.removesuffix("/v1")
    for path in ODD_PATHS:
        for method in ("GET", "POST", "DELETE", "PATCH"):
            _send(client, report, f"{method} (odd path)", method, root + path)


def fuzz(
    base_url: str,
    *,
    cases: int,
    seed: int,
    content_types: list[str] = CONTENT_TYPES,
    progress: Callable[[str], None] = lambda _: None,
) -> FuzzReport:
    """Run the whole campaign against ``base_url`` (``http://127.0.0.1:P/v1``): the malformed bodies with each of
    ``content_types``, then about ``cases`` schema cases split over the document's operations."""
    report = FuzzReport()
    headers = {"Authorization": "Bearer sk-fuzz"}
    with httpx.Client(timeout=30, headers=headers) as client:
        _malformed_cases(client, base_url, report, content_types)
        progress(f"malformed bodies: {report.requests} requests, {len(report.server_errors)} 5xx")
        schema = client.get(f"{base_url}/openapi.json")
        if schema.status_code != 200:
            progress(f"no OpenAPI document at {base_url}/openapi.json ({schema.status_code}): schema phase skipped")
            return report
        operations = len([m for p in schema.json()["paths"].values() for m in p])
        _schema_cases(client, base_url, report, max(2, cases // operations), seed, progress)
    return report


def _start_stack(log: IO[bytes]) -> Generator[str]:
    from local.scripted_upstream import UpstreamConfig, serve
    from local.stack import running_stack

    with serve(UpstreamConfig()) as upstream:
        env = {"UPSTREAM_TIMEOUT_SECONDS": "2", "BACKGROUND_STEP_SECONDS": "0.05"}
        with running_stack(upstream_base_url=upstream, env=env, output=log) as base_url:
            yield base_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="schema cases in all (split over operations)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-url", help="an already running stack (default: start one on a free port)")
    parser.add_argument("--report", help="write the whole report (every 5xx with what was sent) as JSON here")
    parser.add_argument("--stack-log", default=".cache/fuzz-stack.log", help="the started stack's output")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {line}", flush=True)

    if args.base_url:
        report = fuzz(args.base_url, cases=args.cases, seed=args.seed, progress=progress)
    else:
        os.makedirs(os.path.dirname(args.stack_log) or ".", exist_ok=True)
        log = open(args.stack_log, "wb")  # noqa: SIM115 (closed below, after the stack)
        stack = _start_stack(log)
        base_url = next(stack)
        try:
            report = fuzz(base_url, cases=args.cases, seed=args.seed, progress=progress)
        finally:
            stack.close()
            log.close()
    summary = report.summary()
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.report:
        with open(args.report, "w") as out:
            json.dump({**summary, "server_errors": report.server_errors, "dropped": report.dropped,
                       "not_enveloped": report.not_enveloped, "failed_responses": report.failed_responses},
                      out, indent=1)  # fmt: skip
    for error in report.server_errors[:20]:
        print(f"5xx {error['status']} {error['operation']}: sent {error['sent'][:160]} -> {error['body'][:160]}")
    return 1 if report.server_errors or report.dropped else 0


if __name__ == "__main__":
    raise SystemExit(main())
