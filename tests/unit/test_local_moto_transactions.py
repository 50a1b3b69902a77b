"""The local moto's cheaper TransactWriteItems rollback (``local.moto_server.cheap_transaction_rollback``) keeps
DynamoDB's all-or-nothing behaviour: a cancelled transaction leaves every item it touched as it was, a successful
one writes them all, and items it did not name are not restored to anything (the table itself is not copied)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.moto_server import cheap_transaction_rollback
from tests.conftest import moto_table

TABLE = "responses-transactions"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_table(monkeypatch, TABLE):
        undo = cheap_transaction_rollback()
        try:
            yield boto3.client("dynamodb")
        finally:
            undo()


def _put(pk: str, sk: str, **attrs: Any) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"N": str(v)} for k, v in attrs.items()}}
    return {"Put": {"TableName": TABLE, "Item": item}}


def _count(ddb: Any, pk: str, sk: str) -> int | None:
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")
    return None if item is None else int(item["n"]["N"])


def test_a_cancelled_transaction_leaves_what_it_touched_as_it_was(ddb: Any):
    ddb.transact_write_items(TransactItems=[_put("A", "META", n=1), _put("A", "ITEM#1", n=10)])
    assert (_count(ddb, "A", "META"), _count(ddb, "A", "ITEM#1")) == (1, 10)
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "B"}, "sk": {"S": "META"}, "n": {"N": "5"}})
    one = {":one": {"N": "1"}}
    bump = {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "A"}, "sk": {"S": "META"}},
                       "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": one}}  # fmt: skip
    refused = {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "A"}, "sk": {"S": "GONE"}},
                          "UpdateExpression": "SET n = :one", "ConditionExpression": "attribute_exists(pk)",
                          "ExpressionAttributeValues": one}}  # fmt: skip
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        # a new item, an update and a replaced item, then a refused condition: none of it may stay
        ddb.transact_write_items(TransactItems=[_put("A", "ITEM#2", n=20), bump, _put("A", "ITEM#1", n=99), refused])
    assert _count(ddb, "A", "ITEM#2") is None
    assert (_count(ddb, "A", "META"), _count(ddb, "A", "ITEM#1")) == (1, 10)
    assert _count(ddb, "B", "META") == 5 and _count(ddb, "A", "GONE") is None
    ddb.transact_write_items(TransactItems=[_put("A", "ITEM#2", n=20), bump])
    assert (_count(ddb, "A", "ITEM#2"), _count(ddb, "A", "META")) == (20, 2)
    rows = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :a", ExpressionAttributeValues={":a": {"S": "A"}})
    assert [r["sk"]["S"] for r in rows["Items"]] == ["ITEM#1", "ITEM#2", "META"]
