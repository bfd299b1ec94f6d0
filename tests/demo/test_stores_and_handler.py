"""Each service's own store: rollbacks and commits apply at most once; and the shipping handler ships a
placed order, ignores everything else and reports a poison order in batchItemFailures."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from corrtrace.demo.catalog.store import CatalogStore, OutOfStock
from corrtrace.demo.checkout.store import OrdersTable, read_orders
from corrtrace.demo.payment.store import PaymentStore
from corrtrace.demo.shipping.handler import is_placed, make_handler
from corrtrace.demo.shipping.store import ShippingStore

from tests.fixtures import AWS_EVENTS


def test_catalog_release_is_applied_once_and_returns_stock(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path / "catalog.sqlite3")
    store.seed_stock(["sku-a"], 5)
    assert store.reserve("c1", "o1", "sku-a", 3) == "reserved"
    assert store.reserve("c1", "o1", "sku-a", 3) == "reserved"  # a retried call reserves nothing more
    with pytest.raises(OutOfStock):
        store.reserve("c2", "o2", "sku-a", 3)
    assert store.release("c1") is True
    assert store.release("c1") is False
    row = store.query("SELECT status, rollbacks, rollback_calls FROM reservations WHERE correlation_id='c1'")[0]
    assert row == {"status": "released", "rollbacks": 1, "rollback_calls": 2}
    assert store.query("SELECT qty FROM stock")[0]["qty"] == 5
    assert store.commit("c1") is False  # a released reservation cannot be committed


def test_payment_refund_once_and_no_refund_of_a_decline(tmp_path: Path) -> None:
    store = PaymentStore(tmp_path / "payment.sqlite3")
    store.record("c1", "o1", 900, "charged")
    store.record("c2", "o2", 900, "declined")
    assert store.capture("c1") is True
    assert store.refund("c1") is True and store.refund("c1") is False
    assert store.refund("c2") is False
    rows = {r["correlation_id"]: r for r in store.query("SELECT * FROM charges")}
    assert (rows["c1"]["status"], rows["c1"]["rollbacks"]) == ("refunded", 1)
    assert (rows["c2"]["status"], rows["c2"]["rollbacks"]) == ("declined", 0)


def test_checkout_staged_commit_and_single_rollback_on_dynamodb(own_aws: Callable[[str], Any]) -> None:
    ddb = own_aws("dynamodb")
    table = f"orders-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "correlation_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "correlation_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    orders = OrdersTable(ddb, table)
    body = {"order_id": "o1", "sku": "sku-a", "qty": 1, "amount_cents": 500, "address": {"street": "1", "city": "B"}}
    assert orders.stage("c1", body) is True and orders.stage("c1", body) is False
    assert orders.commit("c2") is False  # unknown order
    assert orders.place("c1") is True and orders.place("c1") is False
    assert orders.rollback("c1") is True
    assert orders.rollback("c1") is False
    assert orders.commit("c1") is False  # a cancelled order is never committed
    row = read_orders(ddb, table)["c1"]
    assert (row["status"], row["rollbacks"], row["rollback_calls"]) == ("rolled_back", 1, 2)


def _record(seq: str, cid: str, old: str, new: str, postcode: bool) -> dict[str, Any]:
    address = {"street": {"S": "1 Main St"}, "city": {"S": "Berlin"}}
    if postcode:
        address["postcode"] = {"S": "10115"}

    def image(status: str) -> dict[str, Any]:
        return {
            "correlation_id": {"S": cid},
            "order_id": {"S": f"o-{cid}"},
            "status": {"S": status},
            "address": {"M": address},
        }

    return {
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "SequenceNumber": seq,
            "Keys": {"correlation_id": {"S": cid}},
            "OldImage": image(old),
            "NewImage": image(new),
        },
    }


def test_shipping_handler_ships_placed_orders_and_reports_the_poison(tmp_path: Path) -> None:
    store = ShippingStore(tmp_path / "shipping.sqlite3")
    published: list[tuple[str, str, str]] = []
    committed: list[str] = []
    handler = make_handler(store, lambda *a: published.append(a), committed.append)
    event = {
        "Records": [
            _record("1", "good", "staged", "placed", postcode=True),
            _record("2", "poison", "staged", "placed", postcode=False),
            _record("3", "later", "placed", "committed", postcode=True),  # a commit is not a shipping order
        ]
    }
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "2"}]}  # redelivery
    shipments = store.query("SELECT correlation_id, deliveries FROM shipments")
    assert shipments == [{"correlation_id": "good", "deliveries": 2}]
    assert published == [("shipment-created", "good", "o-good")]  # published once, not per delivery
    assert committed == ["good", "good"]  # the manager's commit is idempotent


def test_records_of_the_real_lambda_event_are_not_shipping_orders() -> None:
    event = json.loads((AWS_EVENTS / "dynamoStreamEvent.json").read_text())
    assert not any(is_placed(r) for r in event["Records"])
