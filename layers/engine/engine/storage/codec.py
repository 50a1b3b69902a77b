"""The one DynamoDB attribute codec: plain Python values ⇄ DynamoDB's typed attribute maps.

Written here rather than taken from boto3's ``TypeSerializer``/``TypeDeserializer``: those import boto3 at module
load (the handlers import storage long before they need a client) and read numbers back as ``Decimal``. This
project stores strings, integers, booleans, bytes, lists and maps; numbers come back as ``int`` (or ``float``
when they were written as one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["decode", "decode_row", "encode", "encode_row", "encode_values"]


def encode(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):  # before int: bool is an int
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): encode(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [encode(v) for v in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def decode(attr: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value as Python."""
    (kind, value), *_ = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "B":
        return bytes(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: decode(v) for k, v in value.items()}
    if kind == "L":
        return [decode(v) for v in value]
    if kind == "SS":
        return set(value)
    raise TypeError(f"unsupported DynamoDB attribute type {kind}")


def encode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row (attribute name → Python value) as a DynamoDB item; ``None`` values are left out."""
    return {name: encode(value) for name, value in row.items() if value is not None}


def decode_row(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: decode(value) for name, value in item.items()}


def encode_values(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``ExpressionAttributeValues`` from Python values."""
    return {name: encode(value) for name, value in values.items()} if values else None
