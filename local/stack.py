"""Start the local stack (``python -m local.serve``) in a child process, for tests and the benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from local.processes import stop

ROOT = Path(__file__).resolve().parent.parent


def stack_table(base_url: str) -> tuple[Any, str]:
    """A DynamoDB client of a running local stack's moto and the stack's table name (from its health endpoint), for
    checks behind the API: what is at rest, backdating a row."""
    import boto3

    health = httpx.get(base_url.removesuffix("/v1") + "/_local/health").json()
    client = boto3.client("dynamodb", endpoint_url=health["aws_endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    return client, str(health["table_name"])


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_stack(
    *,
    upstream_base_url: str | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
    output: IO[bytes] | None = None,
) -> Iterator[str]:
    """Run ``make serve``'s code path in a child process; yield its base URL (``http://127.0.0.1:P/v1``).
    ``output``: where the child's stdout and stderr go (default: this process's)."""
    port = port or free_port()
    child_env = {**os.environ, "PORT": str(port), "PYTHONPATH": f"{ROOT / 'layers' / 'engine'}{os.pathsep}{ROOT}"}
    child_env.pop("UPSTREAM_BASE_URL", None)
    child_env.pop("UPSTREAM_API_KEY", None)
    # Auth and limits only when a caller asks for them (a shell's API_KEYS must not turn auth on for the suite).
    for name in ("API_KEYS", "AUTH_CACHE_SECONDS", "LOCAL_RATE_LIMIT", "LOCAL_BURST_LIMIT"):
        child_env.pop(name, None)
    if upstream_base_url:
        child_env["UPSTREAM_BASE_URL"] = upstream_base_url
        child_env["UPSTREAM_API_KEY"] = "sk-scripted"
    child_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.serve"], cwd=ROOT, env=child_env, stdout=output, stderr=output
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"local stack exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/_local/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("local stack did not become ready within 60 s")
            time.sleep(0.1)
        yield f"{base}/v1"
    finally:
        stop(proc)
