"""The table every repository shares: its client (made on first use), the codec applied on the way in and out,
paged queries that always follow ``LastEvaluatedKey``, and batch writes that retry unprocessed items."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from engine.storage import clients
from engine.storage.codec import decode_row, encode_row, encode_values

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["ConditionFailed", "DynamoTable", "Row", "just_before"]

Row = dict[str, Any]
_BATCH = 25


def just_before(sort_key: str) -> str:
    """The greatest bound below ``sort_key`` for a ``BETWEEN`` (sort keys here end in fixed-width digits)."""
    return sort_key[:-1] + chr(ord(sort_key[-1]) - 1) + "~"


class ConditionFailed(Exception):
    """A conditional write was refused; ``old`` is the row as it was, when asked for."""

    def __init__(self, old: Row | None = None) -> None:
        super().__init__("condition failed")
        self.old = old


class DynamoTable:
    """One DynamoDB table, rows as plain dicts (see ``codec``)."""

    def __init__(self, table_name: str, retention_days: int = 0) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400

    @cached_property
    def client(self) -> DynamoDBClient:
        return clients.dynamodb()

    # --- single rows ---------------------------------------------------------------------------------------------

    def get(self, key: Row, *, projection: str | None = None, names: dict[str, str] | None = None) -> Row | None:
        """A row, read strongly consistently, or None."""
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Key": encode_row(key), "ConsistentRead": True}
        if projection:
            kwargs["ProjectionExpression"] = projection
        if names:
            kwargs["ExpressionAttributeNames"] = names
        item = self.client.get_item(**kwargs).get("Item")
        return decode_row(item) if item is not None else None

    def put(
        self,
        row: Row,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: Row | None = None,
    ) -> None:
        self._write(self.client.put_item, {"Item": encode_row(row)}, condition, names, values, old=False)

    def update(
        self,
        key: Row,
        expression: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: Row | None = None,
        returns: Literal["NONE", "ALL_NEW", "UPDATED_NEW", "ALL_OLD"] = "NONE",
        old_on_failure: bool = False,
    ) -> Row | None:
        """Apply ``expression``; the attributes ``returns`` asks for. ``ConditionFailed`` when refused."""
        result = self._write(
            self.client.update_item,
            {"Key": encode_row(key), "UpdateExpression": expression, "ReturnValues": returns},
            condition,
            names,
            values,
            old=old_on_failure,
        )
        attributes = result.get("Attributes")
        return decode_row(attributes) if attributes else None

    def delete(
        self,
        key: Row,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: Row | None = None,
        returning: bool = False,
    ) -> Row | None:
        """Delete a row; with ``returning``, the row as it was (None if there was none)."""
        kwargs: dict[str, Any] = {"Key": encode_row(key)}
        if returning:
            kwargs["ReturnValues"] = "ALL_OLD"
        result = self._write(self.client.delete_item, kwargs, condition, names, values, old=False)
        attributes = result.get("Attributes")
        return decode_row(attributes) if attributes else None

    def _write(
        self,
        call: Any,
        kwargs: dict[str, Any],
        condition: str | None,
        names: dict[str, str] | None,
        values: Row | None,
        *,
        old: bool,
    ) -> Any:
        kwargs["TableName"] = self.table_name
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = encode_values(values)
        if old:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            return call(**kwargs)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            item: Any = exc.response.get("Item")
            raise ConditionFailed(decode_row(item) if item else None) from None

    def get_many(
        self, keys: Sequence[Row], *, projection: str | None = None, names: dict[str, str] | None = None
    ) -> list[Row | None]:
        """Rows by key (one BatchGetItem for up to 100), read strongly consistently; None where absent.
        A ``projection`` must include ``pk`` and ``sk`` (rows are matched to their keys by them)."""
        wanted = [encode_row(key) for key in keys]
        found: dict[tuple[str, str], Row] = {}
        request: dict[str, Any] = {"Keys": wanted, "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        pending: dict[str, Any] = {self.table_name: request}
        for attempt in range(8):
            result = self.client.batch_get_item(RequestItems=pending)
            for item in result.get("Responses", {}).get(self.table_name, []):
                row = decode_row(item)
                found[(str(row["pk"]), str(row["sk"]))] = row
            pending = dict(result.get("UnprocessedKeys") or {})
            if not pending:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))
        else:
            raise RuntimeError("DynamoDB kept throttling batch reads")
        return [found.get((str(key["pk"]), str(key["sk"]))) for key in keys]

    # --- queries -----------------------------------------------------------------------------------------------

    def query_page(
        self,
        key: str,
        values: Row,
        *,
        index: str | None = None,
        filter: str | None = None,
        names: dict[str, str] | None = None,
        projection: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        start: dict[str, Any] | None = None,
    ) -> tuple[list[Row], dict[str, Any] | None]:
        """One Query call: its rows and its ``LastEvaluatedKey`` (raw, to pass back as ``start``)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": key,
            "ExpressionAttributeValues": encode_values(values),
            "ScanIndexForward": forward,
        }
        if index:
            kwargs["IndexName"] = index  # GSIs are eventually consistent only
        else:
            kwargs["ConsistentRead"] = True
        if filter:
            kwargs["FilterExpression"] = filter
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if projection:
            kwargs["ProjectionExpression"] = projection
        if limit:
            kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = start
        result = self.client.query(**kwargs)
        return [decode_row(item) for item in result.get("Items", [])], result.get("LastEvaluatedKey")

    def query(self, key: str, values: Row, *, at_least: int | None = None, **options: Any) -> list[Row]:
        """Every row the query matches (following ``LastEvaluatedKey``), or, with ``at_least``, pages until that
        many rows were kept (a filtered query's ``Limit`` counts rows read, not rows kept)."""
        rows: list[Row] = []
        start = None
        while True:
            page, start = self.query_page(key, values, start=start, **options)
            rows.extend(page)
            if start is None or (at_least is not None and len(rows) >= at_least):
                return rows

    # --- batches -----------------------------------------------------------------------------------------------

    def batch_write(self, puts: Sequence[Row] = (), deletes: Sequence[Row] = ()) -> int:
        """Put and delete rows, 25 a call, retrying unprocessed ones with back-off; the number of calls made."""
        requests = [{"PutRequest": {"Item": encode_row(row)}} for row in puts]
        requests += [{"DeleteRequest": {"Key": encode_row(key)}} for key in deletes]
        calls = 0
        for begin in range(0, len(requests), _BATCH):
            pending: dict[str, Any] = {self.table_name: requests[begin : begin + _BATCH]}
            for attempt in range(8):
                result = self.client.batch_write_item(RequestItems=pending)
                calls += 1
                pending = dict(result.get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("DynamoDB kept throttling batch writes")
        return calls
