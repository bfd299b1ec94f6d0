"""Check a demo run against the services' own databases: every injected failure rolled back exactly once
everywhere, every good order final everywhere, and stock arithmetic exact."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from corrtrace.demo.faults import FaultPlan
from corrtrace.demo.stores import Snapshot


@dataclass
class OrderOutcome:
    plan: FaultPlan
    correlation_id: str
    http_status: int
    body: dict[str, Any] = field(default_factory=dict)
    outage: bool = False  # failed because the manager was stopped (the --manager-outage fault)

    @property
    def expected_failure(self) -> bool:
        return self.plan.fault != "none" or self.outage


@dataclass
class Verification:
    ok_orders: int = 0
    failed_orders: int = 0
    rolled_back_verified: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def settled(outcome: OrderOutcome, snap: Snapshot) -> bool:
    """The order has reached its final state in checkout (committed or rolled back); an order that failed in the
    manager's outage may never have reached checkout."""
    order = snap.orders.get(outcome.correlation_id)
    if order is None:
        return outcome.outage
    return order["status"] in ("committed", "rolled_back")


def _outage_issues(r: Any, o: Any, c: Any, s: Any) -> list[str]:
    """A request cut short by the outage: whatever a service did before it must be undone, exactly once."""
    issues = []
    if r is not None and (r["status"] != "released" or r["rollbacks"] != 1):
        issues.append(f"catalog reservation {(r['status'], r['rollbacks'])}, expected released once")
    if o is not None and (o["status"] != "rolled_back" or int(o["rollbacks"]) != 1):
        issues.append(f"checkout order {(o['status'], o['rollbacks'])}, expected rolled_back once")
    if (
        c is not None
        and not (c["status"] == "declined" and c["rollbacks"] == 0)
        and (c["status"] != "refunded" or c["rollbacks"] != 1)
    ):
        issues.append(f"payment {(c['status'], c['rollbacks'])}, expected declined or refunded once")
    if s is not None:
        issues.append("shipping has a shipment for a failed order")
    return issues


def verify(outcomes: list[OrderOutcome], snap: Snapshot) -> Verification:
    result = Verification()
    sold: Counter[str] = Counter()
    for out in outcomes:
        cid, plan = out.correlation_id, out.plan
        r, o = snap.reservations.get(cid), snap.orders.get(cid)
        c, s = snap.charges.get(cid), snap.shipments.get(cid)
        issues: list[str] = []
        if out.outage:
            result.failed_orders += 1
            issues = _outage_issues(r, o, c, s)
            result.rolled_back_verified += not issues
        elif out.expected_failure:
            result.failed_orders += 1
            if r is None or r["status"] != "released" or r["rollbacks"] != 1:
                issues.append(f"catalog reservation {r and (r['status'], r['rollbacks'])}, expected released once")
            if o is None or o["status"] != "rolled_back" or int(o["rollbacks"]) != 1:
                issues.append(f"checkout order {o and (o['status'], o['rollbacks'])}, expected rolled_back once")
            if plan.fault == "decline":
                if c is None or c["status"] != "declined" or c["rollbacks"] != 0:
                    issues.append(f"payment {c and (c['status'], c['rollbacks'])}, expected declined (no refund)")
            elif c is None or c["status"] != "refunded" or c["rollbacks"] != 1:
                issues.append(f"payment {c and (c['status'], c['rollbacks'])}, expected refunded once")
            if s is not None:
                issues.append("shipping has a shipment for a failed order")
            if not issues:
                result.rolled_back_verified += 1
        else:
            result.ok_orders += 1
            sold[plan.sku] += plan.qty
            if r is None or r["status"] != "committed" or r["rollbacks"] != 0:
                issues.append(f"catalog reservation {r and (r['status'], r['rollbacks'])}, expected committed")
            if o is None or o["status"] != "committed":
                issues.append(f"checkout order {o and o['status']}, expected committed")
            if c is None or c["status"] != "captured":
                issues.append(f"payment {c and c['status']}, expected captured")
            if s is None:
                issues.append("no shipment")
        result.problems += [f"{plan.order_id} ({cid}, {plan.fault}): {issue}" for issue in issues]
    for sku, row in snap.stock.items():
        expected = int(row["initial"]) - sold[sku]
        if int(row["qty"]) != expected:
            result.problems.append(f"stock of {sku} is {row['qty']}, expected {expected}")
    return result
