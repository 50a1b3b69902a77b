"""Embedded AWS for the local stack: a moto server on loopback, with the table created from the template."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["create_table", "start_moto"]

LOCAL_TABLE = "responses-local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoProcess:
    """``python -m local.moto_server`` in a child process; stopped with the stack."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "local.moto_server", "--port", str(port)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start within 30 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def start_moto(port: int | None = None) -> MotoProcess:
    """Start moto's server on loopback and point boto3 (and everything using it) at it."""
    server = MotoProcess(port or _free_port())
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_ENDPOINT_URL": server.endpoint,
        }
    )
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    return server


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
