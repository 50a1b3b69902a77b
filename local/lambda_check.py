"""``make lambda-check``: the output of ``sam build`` started the way Lambda starts it, against a local moto.

The local stack (``make serve``) runs the repository's code; this runs the *artifact*: the build directory of
each function and the built engine layer, with nothing from the checkout on the path. Design:

* **Build**: :func:`local.artifact.build` for this machine's architecture (the template's ``Architecture``
  parameter; arm64, the deployed default, cannot run on x86_64 here), precompiled and stripped as deployed.
  The arm64 build is checked separately (``python -m local.artifact elf-check``): every shared object is aarch64
  for CPython 3.13.
* **Filesystem as on Lambda**, in a private mount namespace (``unshare --mount``; as root here, or with
  ``--map-root-user`` in a user namespace otherwise): a fresh ``/var`` holding the function's build directory at
  ``/var/task``, the built layer at ``/opt``, the runtime stand-in at ``/var/runtime``
  (``local/lambda_runtime/bootstrap.py``) and a CPython 3.13 at ``/var/lang`` whose own ``site-packages`` is
  emptied (the layer must carry every dependency; the runtime's bundled boto3 is not relied on). All four are
  read-only, as on Lambda (so no ``.pyc`` can be written at run time: the precompiled ones are what makes init
  fast), ``/tmp`` is a fresh writable tmpfs, and the repository checkout is covered by an empty tmpfs, so
  nothing can be imported from it, whatever ``sys.path`` says.
* **Environment as on Lambda**: ``env -i`` plus only the variables Lambda defines for python3.13
  (``LAMBDA_TASK_ROOT``, ``LAMBDA_RUNTIME_DIR``, ``_HANDLER``, ``AWS_REGION``, ``PATH``, ``LD_LIBRARY_PATH``,
  ``PYTHONPATH=/var/runtime``, ``AWS_LAMBDA_FUNCTION_*``, credentials, ...) and the function's template variables
  resolved from the *built* template (Globals merged; ``!Ref Table`` = the moto table, parameters at their
  defaults). Two deliberate additions, both stand-ins for the network: ``AWS_ENDPOINT_URL`` points the SDK at the
  local moto instead of AWS, and the streaming function's ``AWS_LWA_PORT`` is an ephemeral port.
* **The streaming function** is started through its real ``run.sh`` (``$LAMBDA_TASK_ROOT/$_HANDLER``, which is
  what Lambda Web Adapter's ``/opt/bootstrap`` execs; the adapter itself cannot be downloaded here, so the check
  plays its part): it must answer the readiness path (``AWS_LWA_READINESS_CHECK_PATH``), then the official
  ``openai`` client sends a real ``POST /v1/responses`` with ``store: false`` (demo model, bearer key checked
  by the app as for the function URL), a streamed one, and a stored one shaped as API Gateway forwards it
  (``x-amzn-request-context`` with the authorizer's tenant), which ``GET /v1/responses/{id}`` then returns.
* **Buffered functions**: each is started by the runtime stand-in (``sys.path`` = task root, ``/opt/python``,
  the runtime's) and invoked once with its sample event from ``events/`` (the sample ids replaced by the stored
  response's and a created conversation's): a 5xx, an unhandled error or a module loaded from outside the Lambda
  paths fails the check.

Each function's init (spawn to ready: the runtime's import of the handler, or ``run.sh`` to a healthy readiness
path) and first request are timed; ``make bench`` reports them (:func:`measure`). Exit status 0 when every
function passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local.artifact import Architecture, BuildResult, build, check_elf
from local.processes import stop

__all__ = [
    "Invocation",
    "LambdaFunction",
    "check",
    "functions",
    "host_arch",
    "layer_without_pyc",
    "main",
    "measure",
    "runtime_floor",
]

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = ROOT / "local" / "lambda_runtime"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "lambda-check"
TABLE = "responses-lambda-check"
API_KEY = "sk-local"  # events/authorizer.json's bearer key
TENANT = "default"  # the tenant the sample events' authorizer context names
SAMPLE_RESPONSE_ID = "resp_0123456789abcdef0123456789abcdef"
SAMPLE_CONVERSATION_ID = "conv_0123456789abcdef0123456789abcdef"
READY = "__LAMBDA_CHECK_READY__"
RESULT = "__LAMBDA_CHECK_RESULT__"
# What Lambda's python3.13 runtime defines (docs: "Defined runtime environment variables"), minus per-invocation
# ones (_X_AMZN_TRACE_ID). PYTHONPATH is the runtime directory, as documented for the Python runtimes.
LAMBDA_ENV = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "PYTHONPATH": "/var/runtime",
}
# Mounts of the private namespace; then env -i and the command. $1.. are KEY=VALUE pairs and the command.
_NAMESPACE_SCRIPT = """set -e
# The sources are bound to a staging tmpfs first: the checkout may live under /tmp or /var, which the tmpfs mounts
# below replace, and it is hidden before anything runs.
mount -t tmpfs -o size=1m lambda-stage /mnt
mkdir /mnt/task /mnt/runtime /mnt/lang /mnt/layer
mount --bind -o ro "$LC_TASK" /mnt/task
mount --bind -o ro "$LC_RUNTIME" /mnt/runtime
mount --bind -o ro "$LC_PYTHON" /mnt/lang
mount --bind -o ro "$LC_LAYER" /mnt/layer
mount -t tmpfs -o ro,size=1m checkout-hidden "$LC_HIDE"
mount -t tmpfs -o size=16m,mode=755 lambda-var /var
mkdir /var/task /var/runtime /var/lang
mount --bind -o ro /mnt/task /var/task
mount --bind -o ro /mnt/runtime /var/runtime
mount --bind -o ro /mnt/lang /var/lang
mount -t tmpfs -o ro,size=1m runtime-site-packages /var/lang/lib/python3.13/site-packages
mount --bind -o ro /mnt/layer /opt
mount -t tmpfs -o size=512m lambda-tmp /tmp
umount -l /mnt
cd /var/task
exec env -i "$@"
"""


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    """One function of the built template: where its code is and what Lambda would give it."""

    logical_id: str
    name: str  # the source directory under functions/ (and its events/<name>.json)
    task_root: Path
    handler: str
    environment: dict[str, str]  # template variables, resolved
    memory_mb: int
    timeout: int

    @property
    def streams(self) -> bool:
        return self.handler.endswith(".sh")


@dataclass(slots=True)
class Invocation:
    """What one start of a function did: init (spawn to ready), the first request, and what went wrong."""

    function: str
    init_ms: float = float("nan")
    first_request_ms: float = float("nan")
    import_ms: float = float("nan")  # in-process handler import (buffered functions)
    init_cpu_ms: float = float("nan")  # CPU time (user + system) of the function's process until ready
    problems: list[str] = field(default_factory=list)
    detail: str = ""


def _python_home() -> Path:
    """The CPython 3.13 installation this check mounts at /var/lang (the interpreter's prefix)."""
    return Path(sys.base_prefix).resolve()


def _unshare() -> list[str]:
    base = ["unshare", "--mount", "--propagation", "private"]
    return base if os.geteuid() == 0 else [*base, "--user", "--map-root-user"]


def namespace_ready() -> str | None:
    """Why a private mount namespace cannot be made here (None when it can)."""
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    done = subprocess.run([*_unshare(), "/bin/sh", "-c", "mount -t tmpfs probe /mnt"], capture_output=True, text=True)
    return None if done.returncode == 0 else f"cannot mount in a private namespace: {done.stderr.strip()}"


def spawn(fn: LambdaFunction, layer: Path, command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``command`` as Lambda would run it for ``fn``: private mounts, ``env -i`` plus ``env``."""
    paths = {
        "LC_TASK": str(fn.task_root),
        "LC_RUNTIME": str(RUNTIME_DIR),
        "LC_PYTHON": str(_python_home()),
        "LC_LAYER": str(layer),
        "LC_HIDE": str(ROOT),
    }
    pairs = [f"{key}={value}" for key, value in sorted(env.items())]
    return subprocess.Popen(
        [*_unshare(), "/bin/sh", "-c", _NAMESPACE_SCRIPT, "lambda", *pairs, *command],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **paths},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# --------------------------------------------------------------------------------------------------------------------
# The built template


def _placeholder(name: str) -> str:
    """A resource the local moto does not have: a recognisable value (a function touching it fails visibly)."""
    return f"lambda-check-no-{name.replace('.', '-').lower()}"


def _resolve(node: Any, refs: dict[str, Any], conditions: dict[str, Any]) -> Any:
    """CloudFormation intrinsics used in environment variables, evaluated with ``refs`` (parameters, pseudo
    parameters, resources) and the template's conditions."""

    def walk(item: Any) -> Any:
        if isinstance(item, list):
            return [walk(sub) for sub in item if sub != {"Ref": "AWS::NoValue"}]
        if not isinstance(item, dict) or len(item) != 1:
            return item
        ((key, value),) = item.items()
        if key == "Ref":
            return refs[value] if value in refs else _placeholder(value)
        if key == "Fn::GetAtt":
            target = value if isinstance(value, str) else ".".join(value)
            return refs[target] if target in refs else _placeholder(target)
        if key == "Fn::Join":
            return str(value[0]).join(str(walk(part)) for part in walk(value[1]))
        if key == "Fn::Select":
            return walk(value[1])[int(walk(value[0]))]
        if key == "Fn::Split":
            return str(walk(value[1])).split(value[0])
        if key == "Fn::Sub":
            text, local = (value, {}) if isinstance(value, str) else (value[0], walk(value[1]))
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(local.get(m.group(1), refs.get(m.group(1)))), text)
        if key == "Fn::If":
            name, then, otherwise = value
            return walk(then if condition(conditions[name]) else otherwise)
        return item

    def condition(expr: dict[str, Any]) -> bool:
        ((key, value),) = expr.items()
        if key == "Fn::Equals":
            return str(walk(value[0])) == str(walk(value[1]))
        if key == "Fn::Not":
            return not condition(value[0])
        if key == "Fn::And":
            return all(condition(v) for v in value)
        if key == "Fn::Or":
            return any(condition(v) for v in value)
        if key == "Condition":
            return condition(conditions[value])
        raise ValueError(f"unsupported condition {key}")

    return walk(node)


def functions(result: BuildResult, resources: dict[str, str], parameters: dict[str, str]) -> list[LambdaFunction]:
    """Every function of the built template, with its template variables resolved.

    ``resources`` maps logical ids (and ``Id.Attr``) to the values the local moto gives them."""
    from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped, unused-ignore]

    from local.template import load_template

    built = yaml_parse(result.template.read_text())
    source = {spec.logical_id: spec.code_dir.name for spec in load_template().functions.values()}
    refs: dict[str, Any] = {
        name: str(spec.get("Default", "")) for name, spec in (built.get("Parameters") or {}).items()
    }
    refs.update(parameters)
    stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/{uuid.uuid4()}"
    refs.update(
        {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK,
            "AWS::StackId": stack_id,
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    refs.update(resources)
    # Any other resource a variable names (a function to invoke, a bucket): a name shaped like CloudFormation's.
    for logical_id in built.get("Resources") or {}:
        refs.setdefault(logical_id, f"{STACK}-{logical_id}")
    conditions = built.get("Conditions") or {}
    globals_fn = (built.get("Globals") or {}).get("Function") or {}
    out: list[LambdaFunction] = []
    for logical_id, res in sorted((built.get("Resources") or {}).items()):
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**globals_fn, **res.get("Properties", {})}
        variables = {
            **((globals_fn.get("Environment") or {}).get("Variables") or {}),
            **((res.get("Properties", {}).get("Environment") or {}).get("Variables") or {}),
        }
        resolved = {key: _resolve(value, refs, conditions) for key, value in variables.items()}
        env = {key: str(value) for key, value in resolved.items() if value != {"Ref": "AWS::NoValue"}}
        out.append(
            LambdaFunction(
                logical_id=logical_id,
                name=source.get(logical_id, logical_id),
                task_root=(result.template.parent / str(props["CodeUri"])).resolve(),
                handler=str(props["Handler"]),
                environment=env,
                memory_mb=int(_resolve(props.get("MemorySize", 128), refs, conditions)),
                timeout=int(_resolve(props.get("Timeout", 3), refs, conditions)),
            )
        )
    return out


def lambda_environment(fn: LambdaFunction, **extra: str) -> dict[str, str]:
    """The function's template variables under the variables Lambda itself defines (which win)."""
    name = f"{STACK}-{fn.logical_id}"
    return {
        **fn.environment,
        **extra,
        **LAMBDA_ENV,
        "_HANDLER": fn.handler,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{uuid.uuid4().hex}",
    }


# --------------------------------------------------------------------------------------------------------------------
# Local AWS


@contextmanager
def local_aws() -> Iterator[dict[str, str]]:
    """moto on loopback with the template's table, the reasoning key secret and an API key; yields the
    resource values the functions' variables resolve to (plus ``endpoint``)."""
    import boto3

    from local.aws import create_buckets, create_table, seed_api_keys, start_moto, state_machine_arn
    from local.template import load_template

    moto = start_moto(wait=False)
    moto.wait_ready(timeout=180)  # a loaded 2-core machine can take a while to import moto's backends
    try:
        create_table(load_template().table_properties, TABLE)
        seed_api_keys([(API_KEY, TENANT)], TABLE)
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"{STACK}-reasoning-key", SecretString=uuid.uuid4().hex + uuid.uuid4().hex
        )
        template = load_template()
        values = {
            "Table": TABLE,
            "Table.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}",
            "ReasoningKeySecret": str(secret["ARN"]),
            "endpoint": moto.endpoint,
        }
        # Every bucket and state machine of the template, as the local stack names them (the functions' variables
        # and policies may reference any of them).
        for bucket in create_buckets(template):
            for logical_id in template.buckets:
                values[logical_id] = bucket
                values[f"{logical_id}.Arn"] = f"arn:aws:s3:::{bucket}"
        for logical_id in template.state_machines:
            machine = state_machine_arn(logical_id)
            values[logical_id] = machine
            values[f"{logical_id}.Name"] = machine.rsplit(":", 1)[-1]
        yield values
    finally:
        moto.stop()


# --------------------------------------------------------------------------------------------------------------------
# Running functions


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def invoke_buffered(fn: LambdaFunction, layer: Path, endpoint: str, event: dict[str, Any]) -> tuple[Invocation, Any]:
    """Start the runtime stand-in for ``fn`` in the Lambda-like namespace; invoke the handler once with ``event``."""
    run = Invocation(fn.name)
    env = lambda_environment(fn, AWS_ENDPOINT_URL=endpoint)
    command = ["/var/lang/bin/python3.13", "/var/runtime/bootstrap.py", str(fn.timeout * 1000)]
    started = time.perf_counter()
    proc = spawn(fn, layer, command, env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(event))
    proc.stdin.close()
    output: list[str] = []
    outcome: dict[str, Any] | None = None
    deadline = time.monotonic() + fn.timeout + 30
    ready_at = started
    for line in proc.stdout:
        output.append(line)
        if line.startswith(READY):
            run.init_ms = (time.perf_counter() - started) * 1000
            ready = json.loads(line.split(" ", 1)[1])
            run.import_ms = float(ready["import_ms"])
            run.init_cpu_ms = float(ready.get("cpu_ms", "nan"))
            if ready.get("gc_enabled") is False:
                run.problems.append("the garbage collector is still off after init (engine.coldstart.end_init)")
            ready_at = time.perf_counter()
        elif line.startswith(RESULT):
            run.first_request_ms = (time.perf_counter() - ready_at) * 1000
            outcome = json.loads(line.split(" ", 1)[1])
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(timeout=30)
    log = "".join(output)
    if outcome is None:
        run.problems.append(f"no result (exit {proc.returncode}): {_tail(log)}")
        return run, None
    if outcome.get("outside"):
        run.problems.append(f"modules loaded from outside the Lambda paths: {outcome['outside'][:5]}")
    if "error" in outcome:
        error = outcome["error"]
        run.problems.append(f"{error['errorType']}: {error['errorMessage']} {error.get('stackTrace', '')}")
        return run, None
    return run, outcome["result"]


@dataclass
class StreamProcess:
    """The streaming function's ``run.sh``, started as Lambda Web Adapter starts it, and its port."""

    fn: LambdaFunction
    proc: subprocess.Popen[str]
    port: int
    started: float
    init_cpu_ms: float = float("nan")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """What the process wrote, once it has ended."""
        assert self.proc.stdout is not None
        return self.proc.stdout.read() if self.proc.poll() is not None else ""

    def wait_ready(self, timeout: float = 60) -> float:
        """Poll the readiness path as the adapter does until it answers 2xx; returns spawn-to-ready ms.

        Each poll is one plain HTTP/1.1 GET on a new connection (``http.client``), about what the adapter's own
        probe costs. ``httpx.get`` built a client and an SSL context per poll (~25 ms of CPU each): polled every
        5 ms, the measuring side took most of a core from the function it was timing on a 2-core machine."""
        from http.client import HTTPConnection, HTTPException

        path = self.fn.environment.get("AWS_LWA_READINESS_CHECK_PATH", "/")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"run.sh exited with {self.proc.returncode} before it was ready:\n{self.output()}")
            probe = HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                probe.request("GET", path)
                if 200 <= probe.getresponse().status < 300:
                    self.init_cpu_ms = _process_cpu_ms(self.proc.pid)
                    return (time.perf_counter() - self.started) * 1000
            except (OSError, HTTPException):
                pass
            finally:
                probe.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not answer within {timeout:.0f}s")
            time.sleep(0.005)

    def stop(self) -> str:
        stop(self.proc)
        assert self.proc.stdout is not None
        return self.proc.stdout.read()


def _process_cpu_ms(pid: int) -> float:
    """User + system CPU ms of ``pid`` (``unshare``, ``sh``, ``env``, ``run.sh`` all ``exec``: it is the server)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def start_stream(fn: LambdaFunction, layer: Path, endpoint: str) -> StreamProcess:
    """``$LAMBDA_TASK_ROOT/$_HANDLER`` (``run.sh``), what the adapter's ``/opt/bootstrap`` execs."""
    port = _free_port()
    env = lambda_environment(fn, AWS_ENDPOINT_URL=endpoint, AWS_LWA_PORT=str(port))
    started = time.perf_counter()
    proc = spawn(fn, layer, [f"/var/task/{fn.handler}"], env)
    assert proc.stdin is not None
    proc.stdin.close()
    return StreamProcess(fn, proc, port, started)


def _gateway_context(path: str) -> str:
    """The ``x-amzn-request-context`` the adapter forwards for a REST API request (events/stream.json's context)."""
    context = dict(json.loads((ROOT / "events" / "stream.json").read_text())["requestContext"])
    context["path"] = path
    context["requestId"] = str(uuid.uuid4())
    return json.dumps(context)


def exercise_stream(stream: StreamProcess) -> tuple[list[str], str, float]:
    """Real requests with the official openai client. Returns (problems, the stored response's id, first ms)."""
    from openai import NotFoundError, OpenAI

    problems: list[str] = []
    client = OpenAI(base_url=f"{stream.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=30)
    begun = time.perf_counter()
    direct = client.responses.create(model="demo", input="Say hi", store=False)
    first_ms = (time.perf_counter() - begun) * 1000
    if direct.status != "completed" or "demo model" not in direct.output_text:
        problems.append(f"store:false create: status {direct.status}, text {direct.output_text[:80]!r}")
    try:
        client.responses.retrieve(direct.id)
        problems.append("a store:false response could be retrieved")
    except NotFoundError:
        pass
    with client.responses.stream(model="demo", input="Count to three.", store=False) as events:
        deltas = sum(1 for event in events if event.type == "response.output_text.delta")
        final = events.get_final_response()
    if final.status != "completed" or deltas == 0:
        problems.append(f"streamed create: status {final.status}, {deltas} text deltas")
    gateway = OpenAI(
        base_url=f"{stream.base_url}/v1",
        api_key="unused-behind-the-authorizer",
        max_retries=0,
        timeout=30,
        default_headers={"x-amzn-request-context": _gateway_context("/v1/responses")},
    )
    stored = gateway.responses.create(model="demo", input="Remember this.", metadata={"check": "lambda"})
    again = gateway.responses.retrieve(stored.id)
    if stored.status != "completed" or again.id != stored.id or again.output_text != stored.output_text:
        problems.append(f"stored create/retrieve: {stored.status}, retrieved {again.id} {again.status}")
    return problems, stored.id, first_ms


def _events(name: str, substitutions: dict[str, str]) -> dict[str, Any]:
    text = (ROOT / "events" / f"{name}.json").read_text()
    for old, new in substitutions.items():
        text = text.replace(old, new)
    return dict(json.loads(text))


Expectation = Callable[[Any], str | None]


def _status(*allowed: int) -> Expectation:
    def expect(result: Any) -> str | None:
        status = result.get("statusCode") if isinstance(result, dict) else None
        if status not in allowed:
            return f"statusCode {status}, expected {allowed}: {str(result)[:300]}"
        return None

    return expect


def _allowed(result: Any) -> str | None:
    effects = [s.get("Effect") for s in (result or {}).get("policyDocument", {}).get("Statement", [])]
    if effects != ["Allow"] or (result.get("context") or {}).get("tenant") != TENANT:
        return f"expected Allow for tenant {TENANT}: {str(result)[:300]}"
    return None


def _ran(result: Any) -> str | None:
    """A function without an expectation of its own: an HTTP answer must not be 5xx; a direct invocation (a state
    machine task, an asynchronous worker) must only have returned."""
    if isinstance(result, dict) and "statusCode" in result and not 200 <= int(result["statusCode"]) < 500:
        return f"statusCode {result['statusCode']}: {str(result)[:300]}"
    return None


def _step(result: Any) -> str | None:
    return None if isinstance(result, dict) and "done" in result else f"expected a step result: {result!r}"


def _ingested(result: Any) -> str | None:
    # the sample names a file in no store: the ingest task answers that it skipped it
    return None if result == {"status": "skipped"} else f"expected an ingest summary: {result!r}"


def _served(result: Any) -> str | None:
    return None if isinstance(result, dict) and "responses" in result else f"expected a worker result: {result!r}"


def _keys(*keys: str) -> Expectation:
    """A non-HTTP function (a state machine task, an asynchronous invoke) answers a dict with these keys."""

    def expect(result: Any) -> str | None:
        if isinstance(result, dict) and all(key in result for key in keys):
            return None
        return f"expected a result with {keys}: {str(result)[:300]}"

    return expect


# Order matters: reads first, then writes, the deletes last. A sample id that names nothing is a 404 (OpenAI-shaped;
# still a full trip through the handler and the table); no function may answer 5xx.
EXPECTED: dict[str, Expectation] = {
    "authorizer": _allowed,
    "list_responses": _status(200),
    "openapi": _status(200),
    "list_input_items": _status(200),
    "count_input_tokens": _status(200),
    "create_conversation": _status(200),
    "get_conversation": _status(200),
    "update_conversation": _status(200),
    "create_conversation_items": _status(200),
    "list_conversation_items": _status(200),
    "get_conversation_item": _status(200, 404),
    "delete_conversation_item": _status(200, 404),
    "delete_conversation": _status(200),
    "cancel_response": _status(200, 400, 404),
    "worker": _step,
    # WebSocket mode: the sample connection is opened, sent a message, served and closed (the sample's connectedAt
    # is long past, so the worker finds its state expired and serves nothing: no management API call leaves here).
    "ws_connect": _status(200),
    "ws_message": _status(200),
    "ws_worker": _served,
    "ws_disconnect": _status(200),
    # file_search: list files, create a store (no files), an unknown store's files (404), the ingest task
    "files": _status(200),
    "vector_stores": _status(200),
    "vector_store_files": _status(404),
    "ingest": _ingested,
    "delete_response": _status(200),
}


def check(result: BuildResult, *, verbose: bool = True, layer: Path | None = None) -> list[Invocation]:
    """Start every function of the build once, as Lambda would; each :class:`Invocation` lists its problems.

    ``layer`` replaces the built layer directory (the bench's copy without ``.pyc``)."""
    runs: list[Invocation] = []
    layer_dir = layer or result.layer_dir
    with local_aws() as aws:
        endpoint = aws.pop("endpoint")
        fns = {fn.name: fn for fn in functions(result, aws, {"Architecture": result.arch})}
        subs = {SAMPLE_RESPONSE_ID: SAMPLE_RESPONSE_ID, SAMPLE_CONVERSATION_ID: SAMPLE_CONVERSATION_ID}
        for fn in (f for f in fns.values() if f.streams):
            run = Invocation(fn.name)
            stream = start_stream(fn, layer_dir, endpoint)
            try:
                run.init_ms = stream.wait_ready()
                run.init_cpu_ms = stream.init_cpu_ms
                run.problems, stored_id, run.first_request_ms = exercise_stream(stream)
                subs[SAMPLE_RESPONSE_ID] = stored_id
            except Exception as exc:  # the check reports every function, then fails
                run.problems.append(f"{type(exc).__name__}: {exc}")
            finally:
                output = stream.stop()
            if run.problems:
                run.detail = _tail(output, 20)
            runs.append(run)
        missing = sorted(set(fns) - set(EXPECTED) - {f.name for f in fns.values() if f.streams})
        for name in [n for n in EXPECTED if n in fns] + missing:
            fn = fns[name]
            run, returned = invoke_buffered(fn, layer_dir, endpoint, _events(name, subs))
            if not run.problems:
                problem = EXPECTED.get(name, _ran)(returned)
                if problem:
                    run.problems.append(problem)
            if name == "create_conversation" and not run.problems:
                subs[SAMPLE_CONVERSATION_ID] = json.loads(returned["body"])["id"]
            runs.append(run)
        for name in sorted(set(EXPECTED) - set(fns)):
            runs.append(Invocation(name, problems=["listed in EXPECTED but not in the built template"]))
    if verbose:
        for run in runs:
            verdict = "ok" if not run.problems else "FAILED"
            print(
                f"    {run.function:<26} init {run.init_ms:7.1f} ms (CPU {run.init_cpu_ms:6.1f})  "
                f"first request {run.first_request_ms:7.1f} ms  {verdict}"
            )
            for problem in run.problems:
                print(f"      - {problem}")
            if run.detail:
                print("\n".join(f"        | {line}" for line in run.detail.splitlines()))
    return runs


def measure(result: BuildResult, runs: int, *, layer: Path | None = None) -> dict[str, list[Invocation]]:
    """``runs`` cold starts of every function (each a fresh process and namespace), for ``make bench``."""
    out: dict[str, list[Invocation]] = {}
    for _ in range(runs):
        for run in check(result, verbose=False, layer=layer):
            out.setdefault(run.function, []).append(run)
    return out


def runtime_floor(result: BuildResult, runs: int) -> list[Invocation]:
    """``runs`` starts of the runtime stand-in with a handler that imports nothing (``operator.is_``), in the
    same namespace and environment as the functions: what spawn → ready costs before any of a function's own
    imports (the namespace's mounts, the interpreter, the stand-in), for reading the init figures."""
    fn = next(f for f in functions(result, {}, {"Architecture": result.arch}) if not f.streams)
    empty = replace(fn, handler="operator.is_")
    return [invoke_buffered(empty, result.layer_dir, "http://127.0.0.1:9", {})[0] for _ in range(runs)]


@contextmanager
def layer_without_pyc(layer: Path) -> Iterator[Path]:
    """A copy of ``layer`` (hard links, so it is quick) without any ``__pycache__``: the layer as shipped before
    it was precompiled, for a side-by-side figure."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="layer-no-pyc-", dir=layer.parent) as tmp:
        copy = Path(tmp) / "layer"
        shutil.copytree(layer, copy, copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__"))
        yield copy


def host_arch() -> Architecture:
    return "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"


def main(argv: list[str] | None = None) -> int:
    """Build for this machine, run every function as Lambda would; exit status 0 when all pass."""
    parser = argparse.ArgumentParser(prog="python -m local.lambda_check", description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=None, help="default: .aws-sam/lambda-check/<arch>")
    parser.add_argument("--no-elf-check", action="store_true", help="skip the arm64 build and its ELF check")
    args = parser.parse_args(argv)
    started = time.monotonic()
    why = namespace_ready()
    if why:
        print(f"[lambda-check] FAILED: {why}")
        return 1
    arch = host_arch()
    # The arm64 build (what deploys) and its ELF check run meanwhile: both builds mostly wait on pip.
    elf = None
    if arch != "arm64" and not args.no_elf_check:
        command = [sys.executable, "-m", "local.artifact", "elf-check"]
        elf = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"[lambda-check] sam build for {arch} (this machine), precompiled and stripped as deployed")
    try:
        result = build(arch, args.build_dir)
    except Exception:
        if elf is not None:
            elf.kill()
            elf.wait()
        raise
    print(f"    {'built' if result.rebuilt else 'inputs unchanged, reused'} {result.build_dir} ({result.seconds:.0f}s)")
    print(f"[lambda-check] every function started as Lambda starts it ({shlex.join(_unshare())}, env -i)")
    try:
        runs = check(result)
    except Exception:
        if elf is not None:
            elf.kill()
            elf.wait()
        raise
    failed = [run for run in runs if run.problems]
    elf_failed = False
    if elf is not None:
        print("[lambda-check] the arm64 build (sam deploy's) and its shared objects")
        output, _ = elf.communicate()
        print("\n".join(f"    {line}" for line in output.strip().splitlines()))
        elf_failed = elf.returncode != 0
    elif arch == "arm64":  # this machine's build is the deployed one
        problems, checked = check_elf(result.layer_dir, "arm64")
        print(f"[lambda-check] {checked} shared objects of the arm64 layer checked")
        print("".join(f"  - {problem}\n" for problem in problems), end="")
        elf_failed = bool(problems)
    elapsed = time.monotonic() - started
    if failed or elf_failed:
        elf_verdict = "FAILED" if elf_failed else "ok"
        print(
            f"[lambda-check] FAILED ({len(failed)} of {len(runs)} functions, arm64 ELF {elf_verdict}, {elapsed:.0f}s)"
        )
        return 1
    print(f"[lambda-check] OK ({len(runs)} functions, {elapsed:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
