"""Every DynamoDB, Step Functions and S3 client is made in ``engine.storage`` (``local/`` emulates AWS and may
make its own): nothing else reaches those services except through the storage repositories."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORAGE = ROOT / "layers" / "engine" / "engine" / "storage"
GUARDED = {"dynamodb", "stepfunctions", "s3"}


def _clients_made(source: str) -> list[tuple[int, str]]:
    """(line, service) of each ``<anything>.client(...)``/``.resource(...)`` call naming a guarded service."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in {"client", "resource"}:
            continue
        names = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "service_name")]
        for name in names:
            if isinstance(name, ast.Constant) and name.value in GUARDED:
                found.append((node.lineno, str(name.value)))
    return found


def _shipped_sources() -> list[Path]:
    files = [*(ROOT / "layers" / "engine" / "engine").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    return [path for path in files if STORAGE not in path.parents]


def test_the_check_sees_a_client():
    made = _clients_made(
        "import boto3\nboto3.client('dynamodb')\nsession.client(service_name='s3')\nboto3.resource('dynamodb')\n"
        "boto3.client('bedrock-runtime')\n"
    )
    assert made == [(2, "dynamodb"), (3, "s3"), (4, "dynamodb")]


def test_no_storage_client_outside_storage():
    sources = _shipped_sources()
    assert len(sources) > 30  # the walk found the engine and the handlers
    offenders = [
        f"{path.relative_to(ROOT)}:{line} makes a {service} client"
        for path in sources
        for line, service in _clients_made(path.read_text())
    ]
    assert offenders == [], "use the repositories of engine.storage instead:\n" + "\n".join(offenders)


def test_storage_makes_its_clients():
    made = {service for path in STORAGE.rglob("*.py") for _, service in _clients_made(path.read_text())}
    assert made == GUARDED
