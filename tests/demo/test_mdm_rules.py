"""The MDM rules on hand-made snapshots of the four stores: each kind of disagreement is found, with its
correlation ID, and consistent requests (finished or still in flight) are left alone."""

from __future__ import annotations

import time
from typing import Any

import pytest
from corrtrace.demo.mdm import check
from corrtrace.demo.stores import Snapshot

NOW = time.time()


def snap(**tables: dict[str, dict[str, Any]]) -> Snapshot:
    base: dict[str, Any] = {"reservations": {}, "orders": {}, "charges": {}, "shipments": {}, "stock": {}}
    base.update(tables)
    return Snapshot(**base)


def res(status: str, created: float = NOW - 100) -> dict[str, Any]:
    return {"status": status, "qty": 2, "sku": "sku-fig", "created": created}


def order(status: str, created: float = NOW - 100) -> dict[str, Any]:
    return {"status": status, "created": created}


def charge(status: str, created: float = NOW - 100) -> dict[str, Any]:
    return {"status": status, "created": created}


SHIPPED = {"created": NOW - 90}


def test_consistent_requests_pass() -> None:
    good = snap(
        reservations={"ok": res("committed"), "declined": res("released"), "poison": res("released")},
        orders={"ok": order("committed"), "declined": order("rolled_back"), "poison": order("rolled_back")},
        charges={"ok": charge("captured"), "declined": charge("declined"), "poison": charge("refunded")},
        shipments={"ok": SHIPPED},
    )
    assert check(good, now=NOW) == []


@pytest.mark.parametrize(
    ("tables", "kinds"),
    [
        ({"reservations": {"x": res("reserved")}}, ["orphan-reservation"]),
        ({"charges": {"x": charge("charged")}}, ["orphan-charge"]),
        ({"shipments": {"x": SHIPPED}}, ["orphan-shipment"]),
        ({"reservations": {"x": res("committed")}, "orders": {"x": order("rolled_back")}}, ["orphan-reservation"]),
        ({"orders": {"x": order("rolled_back")}, "charges": {"x": charge("captured")}}, ["orphan-charge"]),
        (
            {
                "reservations": {"x": res("reserved")},
                "orders": {"x": order("committed")},
                "charges": {"x": charge("charged")},
            },
            ["charge-not-captured", "committed-not-shipped", "reservation-not-committed"],
        ),
        ({"orders": {"x": order("placed")}}, ["stuck-order"]),
    ],
)
def test_each_disagreement_is_reported_with_its_correlation_id(
    tables: dict[str, dict[str, Any]], kinds: list[str]
) -> None:
    found = check(snap(**tables), now=NOW)
    assert sorted(i.kind for i in found) == kinds
    assert {i.correlation_id for i in found} == {"x"}
    assert all(i.detail and i.services for i in found)


def test_requests_in_flight_are_left_alone_until_the_grace_period_ends() -> None:
    young = snap(reservations={"x": res("reserved", created=NOW - 1)}, orders={"y": order("staged", NOW - 2)})
    assert check(young, grace_seconds=30, now=NOW) == []
    assert sorted(i.kind for i in check(young, grace_seconds=30, now=NOW + 60)) == ["orphan-reservation", "stuck-order"]
