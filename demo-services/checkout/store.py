"""Checkout's own database: the orders table in DynamoDB (moto), keyed by correlation ID, with a stream.

An order is written ``staged``, becomes ``placed`` once payment is authorised (that MODIFY record on the
stream is what shipping reacts to) and ``committed`` only when the manager commits the request after it has
shipped (staged commit, from the talk). Rollback is a conditional update, applied at most once however often
it is asked for.
"""

from __future__ import annotations

import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

_deser = TypeDeserializer()


def plain(image: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (``{"S": ...}`` form) as plain Python values."""
    return {k: _deser.deserialize(v) for k, v in image.items()}


class OrdersTable:
    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb = ddb
        self.table = table

    def stage(self, correlation_id: str, order: dict[str, Any]) -> bool:
        """Write the order as ``staged``; False when this request already has one (a retried call)."""
        address = {k: {"S": str(v)} for k, v in order["address"].items()}
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={
                    "correlation_id": {"S": correlation_id},
                    "order_id": {"S": order["order_id"]},
                    "sku": {"S": order["sku"]},
                    "qty": {"N": str(order["qty"])},
                    "amount_cents": {"N": str(order["amount_cents"])},
                    "address": {"M": address},
                    "status": {"S": "staged"},
                    "created": {"N": f"{time.time():.3f}"},
                    "rollbacks": {"N": "0"},
                    "rollback_calls": {"N": "0"},
                    "commits": {"N": "0"},
                },
                ConditionExpression="attribute_not_exists(correlation_id)",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get(self, correlation_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(
            TableName=self.table, Key={"correlation_id": {"S": correlation_id}}, ConsistentRead=True
        ).get("Item")
        return plain(item) if item else None

    def _transition(self, correlation_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"correlation_id": {"S": correlation_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def place(self, correlation_id: str) -> bool:
        """Payment is authorised: ``staged`` -> ``placed`` (the record shipping ships)."""
        return self._transition(
            correlation_id, "SET #s = :placed", "#s = :staged", {":placed": {"S": "placed"}, ":staged": {"S": "staged"}}
        )

    def commit(self, correlation_id: str) -> bool:
        return self._transition(
            correlation_id,
            "SET #s = :committed, commits = commits + :one",
            "#s IN (:staged, :placed)",
            {
                ":committed": {"S": "committed"},
                ":staged": {"S": "staged"},
                ":placed": {"S": "placed"},
                ":one": {"N": "1"},
            },
        )

    def rollback(self, correlation_id: str) -> bool:
        """Cancel the order (staged or committed) once; counts every call in ``rollback_calls``."""
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"correlation_id": {"S": correlation_id}},
                UpdateExpression="SET rollback_calls = rollback_calls + :one",
                ConditionExpression="attribute_exists(correlation_id)",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return self._transition(
            correlation_id,
            "SET #s = :rolled, rollbacks = rollbacks + :one",
            "#s IN (:staged, :placed, :committed)",
            {
                ":rolled": {"S": "rolled_back"},
                ":staged": {"S": "staged"},
                ":placed": {"S": "placed"},
                ":committed": {"S": "committed"},
                ":one": {"N": "1"},
            },
        )


def read_orders(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every order, as plain values, keyed by correlation ID (the MDM check and the runner's verification)."""
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            row = plain(item)
            found[str(row["correlation_id"])] = row
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
