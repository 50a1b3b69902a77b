"""Offline checks of the SAM template (``make template-check``): no Docker, no AWS credentials, no network.

Run from the repository root with the project venv: ``.venv/bin/python -m local.template_check``.

1. ``sam validate --lint`` on ``template.yaml`` (cfn-lint with the SAM transform applied inside cfn-lint). It is
   started first and runs in a child process while steps 2-4 run here (its output is printed last).
2. Transform the template offline with aws-sam-translator, write ``.aws-sam/transformed.json`` and lint that
   plain CloudFormation with cfn-lint. This is the step that sees SAM-*generated* resources: cfn-lint on the
   SAM source does not report a bad ``Runtime`` or ``FunctionUrlConfig.InvokeMode`` inside
   ``AWS::Serverless::Function`` (shared/notes/aws.md §6), and only the transformed template shows cycles between
   generated roles, permissions and functions.
3. Streaming wiring, on the transformed template: a function with ``AWS_LWA_INVOKE_MODE=response_stream`` is
   reached only through streaming API integrations and function URLs (and the reverse), and a function using the
   LWA exec wrapper has the LWA layer for its architecture. SAM turns a misspelt ``ResponseTransferMode`` into a
   buffered integration without any error, so neither linter notices.
4. Structural checks on the source: every function's ``CodeUri`` (and every layer's ``ContentUri``) is an existing
   directory, the handler named by ``Handler`` exists there (a ``module.function`` handler may also live in a
   layer; a script handler such as ``run.sh`` must be executable), the ``Api`` routes are unique per API, do not
   repeat the stage name, and use a valid ``ResponseTransferMode``.
5. State machine definitions (``AWS::Serverless::StateMachine``): the ASL file named by a local ``DefinitionUri``
   (or an inline ``Definition``) is valid JSON, its ``${Name}`` placeholders and the resource's
   ``DefinitionSubstitutions`` match one to one (CloudFormation leaves an unknown placeholder in the definition
   as text, which fails only when an execution reaches it), ``StartAt`` and every ``Next``/``Default``/
   ``Choices[].Next``/``Catch[].Next`` name an existing state, every non-terminal state has ``Next`` or ``End``,
   and every state is reachable. The transform in step 2 cannot do this: the translator never reads the file
   (the local URI is replaced by an ``s3://`` one first).

Severity policy for step 2 (deliberate): cfn-lint **errors and warnings fail** the check. The pinned
aws-sam-translator output lints with zero warnings today, so any warning is new and worth a look (cfn-lint
warnings flag values that are likely to misbehave at deploy time). **Informational** matches are collected
and printed as counts per rule but never fail: with SAM output they are dominated by generated code we do not
control (I3042 "hardcoded partition" in SAM's own ``arn:aws`` permission and integration ARNs). The transformed
template is linted for ``us-east-1`` only (the region ``sam validate`` runs with here).

Local ``CodeUri``/``ContentUri``/``DefinitionUri`` values are replaced by ``s3://`` URIs before the transform
(the translator only accepts S3 locations; ``sam build``/``sam package`` do this for real), and managed-policy
*names* are not resolved (that needs IAM): use policy templates, inline statements or full ARNs in the template.

Exit status: 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

DESCRIPTION = "Offline checks of the SAM template (sam validate --lint, transformed-template lint, structure)."
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
TRANSFORMED = ROOT / ".aws-sam" / "transformed.json"
REGION = "us-east-1"
LOCAL_URI_KEYS = ("CodeUri", "ContentUri", "DefinitionUri")
LINT_FAIL_SEVERITIES = frozenset({"error", "warning"})
MAX_MESSAGE = 160
TRANSFER_MODES = ("BUFFERED", "RESPONSE_STREAM")
ASL_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
ASL_TERMINAL_TYPES = frozenset({"Succeed", "Fail", "Choice"})


class NoIAMPolicyLoader:
    """Managed-policy loader for the offline transform: knows no policy names, so it never calls IAM."""

    def load(self) -> dict[str, str]:
        return {}


def _bin(name: str) -> str:
    """A console script: SAM CLI lives in its own venv (``.cache/sam``, made by the Makefile) because it pins
    an older boto3 plus awscrt, which would skew the project's import-time figures; others sit next to the
    running interpreter."""
    own_venv = ROOT / ".cache" / "sam" / "bin" / name
    if own_venv.exists():
        return str(own_venv)
    return str(Path(sys.executable).parent / name)


def _env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": REGION}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Parse a SAM template, keeping short-form intrinsics (``!Ref`` …) as their long-form dicts."""
    from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped, unused-ignore]

    parsed = yaml_parse(path.read_text())
    if not isinstance(parsed, dict):
        raise TypeError(f"{path.name} is not a mapping")
    return parsed


def start_sam_validate(template: Path) -> subprocess.Popen[str]:
    """Step 1: start ``sam validate --lint`` in the background (it takes ~3.5 s, mostly start-up)."""
    cmd = [_bin("sam"), "validate", "--lint", "--template", str(template)]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_sam_validate(proc: subprocess.Popen[str], timeout: float = 300) -> list[str]:
    """Wait for ``sam validate --lint``; pass its output through; a non-zero exit is a failure."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return [f"sam validate --lint did not finish within {timeout:.0f}s"]
    if output.strip():
        print("\n".join(f"    {line}" for line in output.strip().splitlines()))
    return [] if proc.returncode == 0 else [f"sam validate --lint exited with {proc.returncode}"]


def _with_s3_uris(node: Any) -> Any:
    """Copy of ``node`` with every local (string, non-``s3://``) CodeUri/ContentUri/DefinitionUri made an S3 URI."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in LOCAL_URI_KEYS and isinstance(value, str) and not value.startswith("s3://"):
                out[key] = f"s3://local-template-check/{value.strip('./') or 'root'}"
            else:
                out[key] = _with_s3_uris(value)
        return out
    if isinstance(node, list):
        return [_with_s3_uris(item) for item in node]
    return node


def transform_template(template: dict[str, Any]) -> dict[str, Any]:
    """Run the SAM transform offline, as ``sam deploy`` would have CloudFormation run it."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator needs a region for ARNs and partitions
    from samtranslator.translator.transform import transform  # type: ignore[import-untyped, unused-ignore]

    result = transform(_with_s3_uris(template), {}, NoIAMPolicyLoader())
    if not isinstance(result, dict):
        raise TypeError("the SAM translator returned no template")
    return result


def check_transformed(template: dict[str, Any], out_path: Path = TRANSFORMED) -> tuple[list[str], dict[str, Any]]:
    """Step 2: transform, write ``out_path``, lint it. Returns (failures, transformed template)."""
    from samtranslator.model.exceptions import InvalidDocumentException  # type: ignore[import-untyped, unused-ignore]

    try:
        transformed = transform_template(template)
    except InvalidDocumentException as exc:
        return [f"SAM transform: {cause.message}" for cause in exc.causes] or [f"SAM transform: {exc.message}"], {}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(transformed, indent=2, sort_keys=True) + "\n")
    print(f"    wrote {_display(out_path)} ({len(transformed.get('Resources', {}))} resources)")

    from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped, unused-ignore]

    matches = lint_file(out_path, config=ManualArgs(regions=[REGION], include_checks=["I"]))
    failures: list[str] = []
    by_severity: Counter[str] = Counter()
    informational: Counter[str] = Counter()
    for match in matches:
        severity = str(match.rule.severity).lower()
        by_severity[severity] += 1
        if severity in LINT_FAIL_SEVERITIES:
            message = str(match.message)
            if len(message) > MAX_MESSAGE:
                message = message[: MAX_MESSAGE - 3] + "..."
            where = "/".join(str(part) for part in getattr(match, "path", None) or []) or f"line {match.linenumber}"
            failures.append(f"cfn-lint (transformed) {severity} {match.rule.id} at {where}: {message}")
        else:
            informational[str(match.rule.id)] += 1
    summary = ", ".join(f"{by_severity[s]} {s}" for s in ("error", "warning", "informational"))
    details = ", ".join(f"{rule} x{n}" for rule, n in sorted(informational.items()))
    print(f"    cfn-lint: {summary}" + (f" (informational, not failing: {details})" if details else ""))
    return failures, transformed


def _resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's resources that are mappings (malformed ones are reported by the linters, not here)."""
    resources = template.get("Resources")
    if not isinstance(resources, dict):
        return {}
    return {str(name): res for name, res in resources.items() if isinstance(res, dict)}


def _display(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _handler_exists(handler: str, code_dir: Path, layer_dirs: list[Path]) -> tuple[bool, str]:
    """Whether ``handler`` resolves to a file; returns (ok, what was looked for)."""
    if "." in handler and not handler.endswith((".sh", ".py")):
        module = handler.rsplit(".", 1)[0].replace(".", "/")
        for base in [code_dir, *layer_dirs]:
            if (base / f"{module}.py").is_file() or (base / module / "__init__.py").is_file():
                return True, ""
        return False, f"{module}.py"
    script = code_dir / handler
    if not script.is_file():
        return False, handler
    if not os.access(script, os.X_OK):
        return False, f"{handler} with the executable bit (chmod +x; Lambda execs it)"
    return True, ""


def check_structure(template: dict[str, Any]) -> list[str]:
    """Step 4: code directories, handlers and API routes."""
    failures: list[str] = []
    resources = _resources(template)
    globals_fn: dict[str, Any] = template.get("Globals", {}).get("Function", {})

    layer_dirs: list[Path] = []
    for name, res in resources.items():
        if res.get("Type") == "AWS::Serverless::LayerVersion":
            uri = res.get("Properties", {}).get("ContentUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                if (ROOT / uri).is_dir():
                    layer_dirs.append(ROOT / uri)
                else:
                    failures.append(f"{name}: ContentUri {uri!r} is not a directory")

    routes: dict[tuple[str, str, str], str] = {}
    functions = 0
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        functions += 1
        props: dict[str, Any] = {**globals_fn, **res.get("Properties", {})}
        uri = props.get("CodeUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            code_dir = ROOT / uri
            if not code_dir.is_dir():
                failures.append(f"{name}: CodeUri {uri!r} is not a directory")
            elif isinstance(props.get("Handler"), str) and props.get("PackageType", "Zip") == "Zip":
                ok, wanted = _handler_exists(props["Handler"], code_dir, layer_dirs)
                if not ok:
                    failures.append(f"{name}: Handler {props['Handler']!r} needs {uri.rstrip('/')}/{wanted}")
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "Api":
                continue
            ev = event.get("Properties", {})
            api = json.dumps(ev.get("RestApiId", "ServerlessRestApi"), sort_keys=True)
            path, method = str(ev.get("Path")), str(ev.get("Method", "")).upper()
            key = (api, path, method)
            if key in routes:
                failures.append(f"duplicate route {method} {path}: {routes[key]} and {name}.{event_name}")
            routes[key] = f"{name}.{event_name}"
            mode = ev.get("ResponseTransferMode")
            if mode is not None and mode not in TRANSFER_MODES:
                failures.append(f"{name}.{event_name}: ResponseTransferMode {mode!r} is not one of {TRANSFER_MODES}")
            stage = _stage_of(resources, ev.get("RestApiId"))
            if stage and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
                failures.append(f"{name}.{event_name}: Path {path!r} repeats the stage name {stage!r}")

    for (_, path, method), target in sorted(routes.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        print(f"    {method:<6} {path:<42} -> {target}")
    print(f"    {functions} functions, {len(layer_dirs)} layer dirs, {len(routes)} routes")
    return failures


def _stage_of(resources: dict[str, Any], rest_api_id: Any) -> str | None:
    """StageName of the ``AWS::Serverless::Api`` referenced by ``RestApiId`` (``{"Ref": name}``), if literal."""
    if isinstance(rest_api_id, dict) and isinstance(rest_api_id.get("Ref"), str):
        stage = resources.get(rest_api_id["Ref"], {}).get("Properties", {}).get("StageName")
        return stage if isinstance(stage, str) else None
    return None


def _sub_text(value: Any) -> str:
    """The literal text of a string or ``Fn::Sub`` value (empty for other intrinsics)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else str(sub[0]) if isinstance(sub, list) and sub else ""
    return ""


def _target_function(value: Any) -> str | None:
    """Logical id of the function a ``Ref``/``Fn::GetAtt`` points at."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        getatt = value.get("Fn::GetAtt")
        if isinstance(getatt, list) and getatt:
            return str(getatt[0])
        if isinstance(getatt, str):
            return getatt.split(".", 1)[0]
    return None


def _parameter_choices(template: dict[str, Any], node: Any) -> list[dict[str, str]]:
    """One parameter set per allowed value of each parameter ``node`` refers to (``[{}]`` when none)."""
    params = template.get("Parameters") or {}
    refs = sorted(_refs(node) & set(params))
    choices: list[dict[str, str]] = [{}]
    for ref in refs:
        allowed = params[ref].get("AllowedValues") or [params[ref].get("Default", "")]
        choices = [{**choice, ref: str(value)} for choice in choices for value in allowed]
    return choices


def _refs(node: Any) -> set[str]:
    """Names of every ``Ref`` inside ``node``."""
    if isinstance(node, dict):
        found = {str(node["Ref"])} if isinstance(node.get("Ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _evaluate(template: dict[str, Any], node: Any, values: dict[str, str]) -> Any:
    """``node`` with parameter ``Ref``s and ``Fn::If`` resolved (parameters at ``values``, else their defaults);
    ``AWS::NoValue`` list entries dropped. Other intrinsics are left as they are."""
    params = template.get("Parameters") or {}
    conditions = template.get("Conditions") or {}

    def value(name: str) -> Any:
        return values.get(name, (params.get(name) or {}).get("Default"))

    def condition(expr: Any) -> bool:
        if isinstance(expr, dict):
            if "Condition" in expr:
                return condition(conditions[expr["Condition"]])
            if "Fn::Equals" in expr:
                left, right = (str(walk(side)) for side in expr["Fn::Equals"])
                return left == right
            if "Fn::Not" in expr:
                return not condition(expr["Fn::Not"][0])
            if "Fn::And" in expr:
                return all(condition(item) for item in expr["Fn::And"])
            if "Fn::Or" in expr:
                return any(condition(item) for item in expr["Fn::Or"])
        raise ValueError(f"unsupported condition {expr!r}")

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            if isinstance(item.get("Ref"), str) and item["Ref"] in params:
                return value(item["Ref"])
            if "Fn::If" in item:
                name, then, otherwise = item["Fn::If"]
                return walk(then if condition(conditions[name]) else otherwise)
            return {key: walk(sub) for key, sub in item.items()}
        if isinstance(item, list):
            return [walk(sub) for sub in item if sub != {"Ref": "AWS::NoValue"}]
        return item

    return walk(node)


def check_streaming(transformed: dict[str, Any]) -> list[str]:
    """Step 3, on the transformed template: the LWA streaming wiring is consistent end to end.

    A function whose ``AWS_LWA_INVOKE_MODE`` is ``response_stream`` must be reached only through streaming
    integrations (``responseTransferMode: STREAM`` + the ``response-streaming-invocations`` URI) and streaming
    function URLs, and vice versa. SAM silently turns a misspelt ``ResponseTransferMode`` into a buffered
    integration, which no linter reports. A function using the LWA exec wrapper must have the LWA layer for its
    architecture.
    """
    failures: list[str] = []
    resources = _resources(transformed)
    streams: dict[str, bool] = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        props = res.get("Properties", {})
        env = (props.get("Environment") or {}).get("Variables") or {}
        streams[name] = str(env.get("AWS_LWA_INVOKE_MODE", "")).lower() == "response_stream"
        if env.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap":
            # Every value the architecture may take (a parameter's AllowedValues), other parameters at defaults.
            for values in _parameter_choices(transformed, props.get("Architectures")):
                archs = _evaluate(transformed, props.get("Architectures", ["x86_64"]), values)
                arch = "Arm64" if archs == ["arm64"] else "X86"
                layers = [_sub_text(layer) for layer in _evaluate(transformed, props.get("Layers", []), values)]
                if not any(f":layer:LambdaAdapterLayer{arch}:" in layer for layer in layers):
                    failures.append(
                        f"{name}: uses the LWA exec wrapper but has no LambdaAdapterLayer{arch} layer "
                        f"(with {values or 'the default parameters'})"
                    )

    seen = 0
    for api_name, res in resources.items():
        if res.get("Type") != "AWS::ApiGateway::RestApi":
            continue
        for path, methods in ((res.get("Properties", {}).get("Body") or {}).get("paths") or {}).items():
            for method, operation in methods.items():
                integration = (operation or {}).get("x-amazon-apigateway-integration") or {}
                uri = _sub_text(integration.get("uri"))
                target = re.search(r"\$\{(\w+)\.Arn\}", uri)
                if not target or target.group(1) not in streams:
                    continue
                seen += 1
                fn = target.group(1)
                streaming = integration.get("responseTransferMode") == "STREAM"
                if streaming != ("/response-streaming-invocations" in uri):
                    failures.append(f"{api_name} {method.upper()} {path}: responseTransferMode and URI disagree")
                if streaming != streams[fn]:
                    failures.append(
                        f"{api_name} {method.upper()} {path} -> {fn}: integration is "
                        f"{'streaming' if streaming else 'buffered'} but AWS_LWA_INVOKE_MODE is "
                        f"{'response_stream' if streams[fn] else 'not response_stream'} (the Api event's "
                        "ResponseTransferMode must be exactly RESPONSE_STREAM iff the function streams)"
                    )
    for name, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Url":
            continue
        props = res.get("Properties", {})
        fn = _target_function(props.get("TargetFunctionArn"))
        if fn in streams and (props.get("InvokeMode") == "RESPONSE_STREAM") != streams[fn]:
            failures.append(f"{name}: InvokeMode {props.get('InvokeMode')!r} does not match {fn}'s AWS_LWA_INVOKE_MODE")
    print(f"    {sum(streams.values())} streaming function(s), {seen} API integrations checked")
    return failures


def _asl_placeholders(node: Any) -> set[str]:
    """Every ``${Name}`` in the strings (keys and values) of an ASL document."""
    if isinstance(node, str):
        return set(ASL_PLACEHOLDER.findall(node))
    if isinstance(node, dict):
        found: set[str] = set()
        for key, value in node.items():
            found |= _asl_placeholders(key) | _asl_placeholders(value)
        return found
    if isinstance(node, list):
        return set().union(*(_asl_placeholders(item) for item in node)) if node else set()
    return set()


def _check_asl_states(machine: Any, where: str) -> list[str]:
    """``StartAt``, transitions and reachability of one (possibly nested) ``{StartAt, States}`` machine."""
    if not isinstance(machine, dict) or not isinstance(machine.get("States"), dict) or not machine["States"]:
        return [f"{where}: no States"]
    states: dict[str, Any] = machine["States"]
    failures: list[str] = []
    start = machine.get("StartAt")
    if start not in states:
        failures.append(f"{where}: StartAt {start!r} is not a state")
    edges: dict[str, list[str]] = {}
    for name, state in states.items():
        if not isinstance(state, dict):
            failures.append(f"{where}.{name}: not an object")
            continue
        kind = state.get("Type")
        targets: list[tuple[str, Any]] = []
        if "Next" in state:
            targets.append(("Next", state["Next"]))
        if "Default" in state:
            targets.append(("Default", state["Default"]))
        for i, choice in enumerate(state.get("Choices") or []):
            targets.append((f"Choices[{i}].Next", (choice or {}).get("Next")))
        for i, catch in enumerate(state.get("Catch") or []):
            targets.append((f"Catch[{i}].Next", (catch or {}).get("Next")))
        for field, target in targets:
            if target not in states:
                failures.append(f"{where}.{name}: {field} {target!r} is not a state")
        if kind == "Choice" and not state.get("Choices"):
            failures.append(f"{where}.{name}: a Choice state needs Choices")
        if kind not in ASL_TERMINAL_TYPES and not state.get("End") and "Next" not in state:
            failures.append(f"{where}.{name}: a {kind} state needs Next or End")
        if state.get("End") and "Next" in state:
            failures.append(f"{where}.{name}: has both Next and End")
        edges[name] = [str(t) for _, t in targets if t in states]
        # Map and Parallel states hold machines of their own.
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                failures += _check_asl_states(state[key], f"{where}.{name}.{key}")
        for i, branch in enumerate(state.get("Branches") or []):
            failures += _check_asl_states(branch, f"{where}.{name}.Branches[{i}]")
    if start in states:
        reached, todo = set(), [str(start)]
        while todo:
            current = todo.pop()
            if current not in reached:
                reached.add(current)
                todo += edges.get(current, [])
        for name in states:
            if name not in reached:
                failures.append(f"{where}.{name}: unreachable from StartAt {start!r}")
    return failures


def check_websocket(template: dict[str, Any]) -> list[str]:
    """The WebSocket API as WebSocket mode needs it: $connect behind a REQUEST authorizer, $default and $disconnect,
    each integration a Lambda proxy that API Gateway may invoke (a Lambda::Permission naming the API), the stage
    the URL outputs name, and the $default function pointed at a worker and the management endpoint."""
    from local.template import _sub_refs

    resources = _resources(template)
    apis = [n for n, r in resources.items() if r.get("Type") == "AWS::ApiGatewayV2::Api"]
    if not apis:
        print("    no WebSocket API")
        return []
    api, failures = apis[0], []
    by_type: dict[str, dict[str, dict[str, Any]]] = {}
    for name, resource in resources.items():
        props = resource.get("Properties") or {}
        if _sub_refs(props.get("ApiId")) == [api]:
            by_type.setdefault(resource["Type"], {})[name] = props
    routes = {props["RouteKey"]: props for props in by_type.get("AWS::ApiGatewayV2::Route", {}).values()}
    for key in ("$connect", "$default", "$disconnect"):
        if key not in routes:
            failures.append(f"{api}: no {key} route")
    if routes.get("$connect", {}).get("AuthorizationType") != "CUSTOM":
        failures.append(f"{api}: $connect is not behind the authorizer")
    permitted = {
        ref
        for resource in resources.values()
        if resource.get("Type") == "AWS::Lambda::Permission"
        and api in _sub_refs((resource.get("Properties") or {}).get("SourceArn"))
        for ref in _sub_refs(resource["Properties"].get("FunctionName"))
    }
    invoked = [
        ref
        for props in [
            *by_type.get("AWS::ApiGatewayV2::Integration", {}).values(),
            *by_type.get("AWS::ApiGatewayV2::Authorizer", {}).values(),
        ]
        for ref in _sub_refs(props.get("IntegrationUri") or props.get("AuthorizerUri"))
        if resources.get(ref, {}).get("Type") == "AWS::Serverless::Function"
    ]
    failures += [
        f"{api}: API Gateway may not invoke {fn} (no Lambda::Permission)" for fn in invoked if fn not in permitted
    ]
    stages = [props.get("StageName") for props in by_type.get("AWS::ApiGatewayV2::Stage", {}).values()]
    outputs = json.dumps(template.get("Outputs") or {})
    if len(stages) != 1 or f"/{stages[0]}" not in outputs:
        failures.append(f"{api}: the stage {stages} is not the one the WebSocketUrl output names")
    integrations = by_type.get("AWS::ApiGatewayV2::Integration", {})
    targets = [integrations[ref] for ref in _sub_refs(routes.get("$default", {}).get("Target")) if ref in integrations]
    default_fn = next((ref for props in targets for ref in _sub_refs(props.get("IntegrationUri"))), None)
    variables = ((resources.get(default_fn or "", {}).get("Properties") or {}).get("Environment") or {}).get(
        "Variables"
    ) or {}
    for name in ("WEBSOCKET_ENDPOINT", "WEBSOCKET_WORKER_FUNCTION"):
        if name not in variables:
            failures.append(f"{api}: the $default function {default_fn} has no {name}")
    print(
        f"    {api}: routes {', '.join(sorted(routes))}; stage {stages[0] if stages else None}; "
        f"{len(invoked)} functions invoked by API Gateway"
    )
    return failures


def check_state_machines(template: dict[str, Any]) -> list[str]:
    """Step 5: each state machine's ASL (local ``DefinitionUri`` file or inline ``Definition``)."""
    failures: list[str] = []
    for name, res in _resources(template).items():
        if res.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = res.get("Properties", {})
        uri = props.get("DefinitionUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            path = ROOT / uri
            where = f"{name} ({uri})"
            try:
                definition = json.loads(path.read_text())
            except OSError as exc:
                failures.append(f"{name}: DefinitionUri {uri!r} cannot be read: {exc.strerror or exc}")
                continue
            except json.JSONDecodeError as exc:
                failures.append(f"{where}: not valid JSON: {exc}")
                continue
        elif isinstance(props.get("Definition"), dict):
            definition, where = props["Definition"], f"{name} (inline Definition)"
        else:
            continue  # an S3 definition: nothing local to read
        substitutions = props.get("DefinitionSubstitutions") or {}
        used = _asl_placeholders(definition)
        for missing in sorted(used - set(substitutions)):
            failures.append(f"{where}: placeholder ${{{missing}}} has no DefinitionSubstitutions entry")
        for unused in sorted(set(substitutions) - used):
            failures.append(f"{name}: DefinitionSubstitutions {unused!r} is not used by the definition")
        failures += _check_asl_states(definition, where)
        states = definition.get("States") if isinstance(definition, dict) else None
        print(f"    {name}: {len(states or {})} states, substitutions {sorted(used)}")
    return failures


def main(argv: list[str] | None = None) -> int:
    """Run all checks; print a summary; return the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m local.template_check", description=DESCRIPTION)
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="SAM template (default: template.yaml)")
    parser.add_argument("--out", type=Path, default=TRANSFORMED, help="where to write the transformed template")
    args = parser.parse_args(argv)
    template_path: Path = args.template.resolve()
    started = time.monotonic()
    failures: list[str] = []

    def step(title: str) -> float:
        print(f"[template-check] {title}")
        return time.monotonic()

    sam_validate = start_sam_validate(template_path)  # runs while the transform and cfn-lint run here
    try:
        try:
            template = load_template(template_path)
        except (OSError, TypeError, ValueError, yaml.YAMLError) as exc:  # unreadable or unparsable: a check failure
            failures.append(f"cannot parse {template_path.name}: {exc}")
            template = {}

        if template:
            t = step("SAM transform (offline) + cfn-lint on the transformed template")
            lint_failures, transformed = check_transformed(template, args.out.resolve())
            failures += lint_failures
            print(f"    {time.monotonic() - t:.1f}s")

            if transformed:
                step("streaming wiring (transformed template)")
                failures += check_streaming(transformed)

            step("code directories, handlers, API routes")
            failures += check_structure(template)

            step("state machine definitions (ASL)")
            failures += check_state_machines(template)
            step("WebSocket API wiring")
            failures += check_websocket(template)

        t = step("sam validate --lint")
        failures += finish_sam_validate(sam_validate)
        print(f"    {time.monotonic() - t:.1f}s more (it ran in parallel with the steps above)")
    finally:
        if sam_validate.poll() is None:  # only on an exception above: do not leave the child running
            sam_validate.kill()
            sam_validate.wait()

    elapsed = time.monotonic() - started
    if failures:
        print(f"[template-check] FAILED ({len(failures)} problem(s), {elapsed:.1f}s):")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print(f"[template-check] OK ({elapsed:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
