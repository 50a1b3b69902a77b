"""Embedded AWS for the local stack: a moto server on loopback, with the table created from the template."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

__all__ = ["create_table", "start_moto"]

LOCAL_TABLE = "responses-local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int | None = None) -> Any:
    """Start moto's server in a thread and point boto3 (and everything using it) at it."""
    port = port or _free_port()
    # Step Functions executions call Lambda on MOTO_PORT; it must be set before moto is imported.
    os.environ["MOTO_PORT"] = str(port)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
    )
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
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
