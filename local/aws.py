"""Embedded AWS for the local stack: a moto server on loopback, with the table, the Lambda functions the state
machines call, and the state machines themselves created from the template."""

from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from .processes import stop
from .template import StackTemplate

__all__ = [
    "LOCAL_FILES_BUCKET",
    "LOCAL_TABLE",
    "create_buckets",
    "create_state_machines",
    "create_table",
    "function_environment",
    "local_usage_key",
    "parse_api_keys",
    "seed_api_keys",
    "start_moto",
    "state_machine_arn",
    "state_machine_variables",
]

LOCAL_TABLE = "responses-local"
LOCAL_FILES_BUCKET = "responses-files-local"
LOCAL_ROLE = "local-stack"
LOCAL_ACCOUNT = "123456789012"  # moto's account for any access key that is not an account id
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def function_environment(table: str = LOCAL_TABLE) -> dict[str, str]:
    """The variables template.yaml's Globals give a deployed function, with local values (the current
    environment wins, so ``UPSTREAM_*`` and any override pass through)."""
    env = {
        "RETENTION_DAYS": "30",
        "POWERTOOLS_SERVICE_NAME": "responses-api",
        "POWERTOOLS_METRICS_NAMESPACE": "ResponsesApi",
        # No CloudWatch or X-Ray daemon locally: keep metrics and traces off, logs on.
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        # Local MCP servers live on 127.0.0.1; a deployment refuses private and loopback addresses.
        "MCP_ALLOW_PRIVATE_NETWORKS": "true",
        # Seals reasoning into encrypted_content; a deployment generates a Secrets Manager secret instead.
        # A fresh key per start of the local stack unless REASONING_KEY is given.
        "REASONING_KEY": secrets.token_urlsafe(32),
    }
    env = {key: os.environ.get(key, value) for key, value in env.items()}
    env["TABLE_NAME"] = table
    env["FILES_BUCKET"] = LOCAL_FILES_BUCKET
    # moto has no S3 Vectors QueryVectors: the local stack searches with the in-process index (same interface).
    env["VECTOR_INDEX"] = "local"
    env.update({key: value for key, value in os.environ.items() if key.startswith("UPSTREAM_")})
    return env


class MotoProcess:
    """``python -m local.moto_server`` in a child process; stopped with the stack."""

    def __init__(self, port: int, env: dict[str, str]) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "local.moto_server", "--port", str(port)],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts connections (it imports its backends first, ~2 s)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start within {timeout:.0f} s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        stop(self._proc)


def start_moto(port: int | None = None, environment: dict[str, str] | None = None, *, wait: bool = True) -> MotoProcess:
    """Start moto's server on loopback and point boto3 (and everything using it) at it.

    ``environment`` is what the functions moto runs (state machine workers) see, on top of this process's
    environment: pass :func:`function_environment`. Their AWS calls go back to this moto, with fake credentials.
    With ``wait=False`` the caller can do its own start-up work meanwhile, then call ``wait_ready()``.
    """
    port = port or _free_port()
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    aws = {
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": os.environ.get("AWS_REGION", region),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    server = MotoProcess(port, {**os.environ, **(environment or {}), **aws})
    os.environ.update(aws)
    if wait:
        server.wait_ready()
    return server


def state_machine_arn(logical_id: str) -> str:
    """The ARN :func:`create_state_machines` gives a state machine (moto's: fixed account, name = logical id).
    Known before moto is up, so the handlers can be loaded while it starts; the creation checks it."""
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"arn:aws:states:{region}:{LOCAL_ACCOUNT}:stateMachine:{logical_id}"


def create_table(properties: dict[str, Any], name: str = LOCAL_TABLE) -> str:
    """Create the table from the template's own ``AWS::DynamoDB::Table`` properties (keys, GSIs, TTL)."""
    import boto3

    client = boto3.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    client.create_table(**kwargs)
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return name


def _nested(value: Any, parameters: dict[str, Any]) -> Any:
    """Template values as S3's API wants them: ``!Ref Parameter`` resolved to its default, digits as ints."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return _nested(parameters[value["Ref"]], parameters)
        return {k: _nested(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_nested(v, parameters) for v in value]
    return int(value) if isinstance(value, str) and value.isdigit() else value


def create_buckets(template: StackTemplate, name: str = LOCAL_FILES_BUCKET) -> list[str]:
    """Create the template's bucket on moto with its own encryption, public access block and lifecycle rules
    (the template has one bucket: uploaded files and index segments)."""
    import boto3

    s3 = boto3.client("s3")
    created: list[str] = []
    for raw in template.buckets.values():
        props = _nested(raw, template.parameters)
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})  # type: ignore[misc,arg-type]
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "LifecycleConfiguration" in props:
            lifecycle: list[Any] = []
            for rule in props["LifecycleConfiguration"]["Rules"]:
                out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": ""}}
                if "ExpirationInDays" in rule:
                    out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
                if "AbortIncompleteMultipartUpload" in rule:
                    out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
                lifecycle.append(out)
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": lifecycle})
        created.append(name)
        break
    return created


def _placeholder_zip() -> bytes:
    """Code for moto's Lambda function record: never run (the dispatch in local.moto_server runs the real handler)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    raise NotImplementedError\n")
    return buffer.getvalue()


def create_state_machines(template: StackTemplate, table: str = LOCAL_TABLE) -> dict[str, str]:
    """Create each state machine of the template from its ASL file, and a Lambda function (named by its logical
    id, the name :mod:`local.moto_server` dispatches on) for each function a definition references.

    ``DefinitionSubstitutions`` are resolved as CloudFormation would: ``!GetAtt F.Arn``/``!Ref F`` of a
    function -> that function's ARN, ``!Ref`` of the table -> ``table``, a literal string -> itself.
    Returns ``{logical id: state machine ARN}``.
    """
    if not template.state_machines:
        return {}
    import boto3

    iam = boto3.client("iam")
    role = iam.create_role(
        RoleName=LOCAL_ROLE,
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",'
        '"Principal":{"Service":["lambda.amazonaws.com","states.amazonaws.com"]}}]}',
    )["Role"]["Arn"]
    lambdas = boto3.client("lambda")
    sfn = boto3.client("stepfunctions")
    function_arns: dict[str, str] = {}
    machine_arns: dict[str, str] = {}
    code = _placeholder_zip()
    for logical_id, machine in template.state_machines.items():
        values: dict[str, str] = {}
        functions = machine.function_substitutions(template.functions)
        for name, value in machine.substitutions.items():
            if isinstance(value, str):
                values[name] = value
            elif (function := functions.get(name)) is not None:
                if function not in function_arns:
                    spec = template.functions[function]
                    function_arns[function] = lambdas.create_function(
                        FunctionName=function,
                        Runtime="python3.13",
                        Role=role,
                        Handler=spec.handler,
                        Code={"ZipFile": code},
                        Timeout=spec.timeout,
                        MemorySize=spec.memory_mb,
                    )["FunctionArn"]
                values[name] = function_arns[function]
            elif value == {"Ref": template.table_id}:
                values[name] = table
            else:
                raise ValueError(f"{logical_id}: cannot resolve DefinitionSubstitutions {name}: {value!r} locally")
        created = sfn.create_state_machine(
            name=logical_id, definition=machine.definition(values), roleArn=role, type=machine.type
        )["stateMachineArn"]
        if created != state_machine_arn(logical_id):
            raise RuntimeError(f"{logical_id}: moto created {created}, expected {state_machine_arn(logical_id)}")
        machine_arns[logical_id] = created
    return machine_arns


def state_machine_variables(template: StackTemplate) -> dict[str, str]:
    """Environment variables the template sets to ``!Ref <state machine>`` (``STATE_MACHINE_ARN``), with the
    local ARNs. The local stack runs every function in one process, so they are merged into one environment."""
    out: dict[str, str] = {}
    for spec in template.functions.values():
        for key, value in spec.environment.items():
            if isinstance(value, dict) and value.get("Ref") in template.state_machines:
                out[key] = state_machine_arn(value["Ref"])
    return out


def parse_api_keys(value: str) -> list[tuple[str, str]]:
    """``API_KEYS``: comma-separated ``key:tenant`` pairs (the tenant follows the last colon)."""
    pairs: list[tuple[str, str]] = []
    for entry in value.split(","):
        if not entry.strip():
            continue
        key, sep, tenant = entry.strip().rpartition(":")
        if not sep or not key or not tenant:
            raise ValueError(f"API_KEYS entries are key:tenant pairs, got {entry.strip()!r}")
        pairs.append((key, tenant))
    return pairs


def local_usage_key(key_hash: str) -> str:
    """The usage-plan key the local stack gives a seeded API key (so each has its own throttle, as API keys made
    with ``engine.cli.keys create --usage-plan-id`` have when deployed)."""
    return f"local-usage-{key_hash[:16]}"


def seed_api_keys(pairs: list[tuple[str, str]], table: str = LOCAL_TABLE) -> None:
    """Store the hashes of ``API_KEYS`` in the local table, as ``python -m engine.cli.keys create`` would."""
    import time

    from engine.auth import display_suffix, hash_key
    from engine.storage import get_key_store
    from engine.storage.keys import KeyRecord

    store = get_key_store(table)
    now = int(time.time())
    for key, tenant in pairs:
        digest = hash_key(key)
        record = KeyRecord(
            key_hash=digest,
            tenant=tenant,
            status="active",
            created_at=now,
            suffix=display_suffix(key),
            name="API_KEYS",
            usage_key=local_usage_key(digest),
        )
        store.put(record)
