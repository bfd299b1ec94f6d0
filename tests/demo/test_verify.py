"""The runner's verification catches what it must: a failure not rolled back everywhere, a rollback applied
twice, a good order not final, stock that does not add up; and it expects the right alerts."""

from __future__ import annotations

from typing import Any

from corrtrace.demo.faults import plan_orders
from corrtrace.demo.runner import expected_alerts
from corrtrace.demo.stores import Snapshot
from corrtrace.demo.verify import OrderOutcome, verify

PLANS = plan_orders(40, seed=3, decline_rate=0.2, poison_rate=0.1, slow_rate=0.1)


def _consistent() -> tuple[list[OrderOutcome], Snapshot]:
    outcomes = [OrderOutcome(p, f"cid-{p.index}", 201) for p in PLANS]
    reservations: dict[str, dict[str, Any]] = {}
    orders: dict[str, dict[str, Any]] = {}
    charges: dict[str, dict[str, Any]] = {}
    shipments: dict[str, dict[str, Any]] = {}
    sold: dict[str, int] = {}
    for o in outcomes:
        failed = o.plan.fault != "none"
        reservations[o.correlation_id] = {"status": "released" if failed else "committed", "rollbacks": int(failed)}
        orders[o.correlation_id] = {"status": "rolled_back" if failed else "committed", "rollbacks": int(failed)}
        status = {"decline": "declined", "poison": "refunded", "none": "captured"}[o.plan.fault]
        charges[o.correlation_id] = {"status": status, "rollbacks": int(o.plan.fault == "poison")}
        if not failed:
            shipments[o.correlation_id] = {}
            sold[o.plan.sku] = sold.get(o.plan.sku, 0) + o.plan.qty
    stock = {sku: {"initial": 100, "qty": 100 - n} for sku, n in sold.items()}
    return outcomes, Snapshot(reservations, orders, charges, shipments, stock)


def test_a_consistent_run_passes() -> None:
    outcomes, snap = _consistent()
    result = verify(outcomes, snap)
    assert result.passed, result.problems
    assert result.failed_orders == result.rolled_back_verified == sum(p.fault != "none" for p in PLANS) > 0


def test_each_kind_of_damage_is_reported() -> None:
    outcomes, snap = _consistent()
    declined = next(o for o in outcomes if o.plan.fault == "decline")
    poison = next(o for o in outcomes if o.plan.fault == "poison")
    good = next(o for o in outcomes if o.plan.fault == "none")
    snap.reservations[declined.correlation_id]["status"] = "reserved"  # not released
    snap.orders[poison.correlation_id]["rollbacks"] = 2  # rolled back twice
    del snap.shipments[good.correlation_id]  # never shipped
    sku = good.plan.sku
    snap.stock[sku]["qty"] += 1  # one unit too many back on the shelf
    result = verify(outcomes, snap)
    text = "\n".join(result.problems)
    assert f"{declined.plan.order_id} ({declined.correlation_id}, decline): catalog reservation" in text
    assert f"{poison.plan.order_id} ({poison.correlation_id}, poison): checkout order ('rolled_back', 2)" in text
    assert f"{good.plan.order_id} ({good.correlation_id}, none): no shipment" in text
    assert f"stock of {sku}" in text
    assert result.rolled_back_verified == result.failed_orders - 2


def test_expected_alerts_follow_the_plan() -> None:
    assert expected_alerts(PLANS) == {"code-errors", "stream-jam", "payment-declines", "payment-latency"}
    calm = plan_orders(20, seed=3, decline_rate=0, poison_rate=0, slow_rate=0)
    assert expected_alerts(calm) == frozenset()
