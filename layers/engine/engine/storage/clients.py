"""The AWS clients of the storage layer, made on first use: boto3 costs ~300 ms of cold start, and a handler
may never need a client. Nothing outside ``engine.storage`` makes a DynamoDB, Step Functions or S3 client
(``tests/test_storage_boundary.py`` checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_stepfunctions.client import SFNClient

__all__ = ["apigateway_management", "dynamodb", "lambda_", "s3", "stepfunctions"]


def _config(**overrides: Any) -> Any:
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 3},
        "connect_timeout": 2,
        "read_timeout": 10,
        "tcp_keepalive": True,
        "max_pool_connections": 64,
    }
    return Config(**(options | overrides))


def dynamodb() -> DynamoDBClient:
    """A new DynamoDB client (each repository keeps its own; a test's moto endpoint is read when it is made)."""
    import boto3

    from engine.settings import get_settings

    settings = get_settings()
    config = _config(
        read_timeout=settings.dynamodb_read_timeout_seconds,
        retries={"mode": "standard", "max_attempts": settings.dynamodb_max_attempts},
    )
    return boto3.client("dynamodb", config=config)


def stepfunctions() -> SFNClient:
    import boto3

    return boto3.client("stepfunctions", config=_config())


def s3() -> S3Client:
    import boto3

    return boto3.client("s3", config=_config())


def apigateway_management(endpoint_url: str) -> Any:
    """The management API of one WebSocket API stage (PostToConnection, DeleteConnection)."""
    import boto3

    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=_config(tcp_keepalive=True))


def lambda_(endpoint_url: str | None = None) -> Any:
    """Lambda (asynchronous invokes); ``endpoint_url`` is for the local stack only."""
    import boto3

    return boto3.client("lambda", endpoint_url=endpoint_url or None, config=_config())
