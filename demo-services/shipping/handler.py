"""Shipping's Lambda handler: ships each order whose stream record shows it placed, then commits it.

It reports failed records through ``batchItemFailures`` (Lambda's ReportBatchItemFailures), so one bad
order does not make the good ones around it run again forever. The label code has a real bug: it assumes
every address has a postcode. A poison order (no postcode) makes it raise, which is the talk's code error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from corrtrace.demo.checkout.store import plain
from corrtrace.demo.shipping.store import ShippingStore

from corrtrace.context import bind_correlation_id

log = logging.getLogger("demo.shipping")


def shipping_label(order: dict[str, Any]) -> str:
    address = order["address"]
    return f"{order['order_id']} | {address['street']}, {address['postcode'].upper()} {address['city']}"


def is_placed(record: dict[str, Any]) -> bool:
    """Only the staged -> placed MODIFY means "ship it"; inserts, commits and cancellations are not for us."""
    if record.get("eventName") != "MODIFY":
        return False
    images = record.get("dynamodb", {})
    new = images.get("NewImage", {}).get("status", {}).get("S")
    old = images.get("OldImage", {}).get("status", {}).get("S")
    return new == "placed" and old == "staged"


def make_handler(
    store: ShippingStore, publish: Callable[[str, str, str], None], commit: Callable[[str], None]
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures: list[dict[str, str]] = []
        for record in event.get("Records", []):
            if not is_placed(record):
                continue
            order = plain(record["dynamodb"]["NewImage"])
            with bind_correlation_id(str(order["correlation_id"])):
                try:
                    label = shipping_label(order)
                    if store.ship(str(order["correlation_id"]), str(order["order_id"]), label):
                        publish("shipment-created", str(order["correlation_id"]), str(order["order_id"]))
                    commit(str(order["correlation_id"]))
                    log.info(
                        "shipped %s",
                        order["order_id"],
                        extra={
                            "event.action": "ship",
                            "event.outcome": "success",
                            "labels.order_id": order["order_id"],
                        },
                    )
                except Exception:
                    log.exception(
                        "shipping failed for order %s",
                        order["order_id"],
                        extra={
                            "event.action": "ship",
                            "event.outcome": "failure",
                            "labels.order_id": order["order_id"],
                        },
                    )
                    failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
        return {"batchItemFailures": failures}

    return handler
