"""Failure injection: which orders decline, poison shipping or pay slowly, decided by rates and a seed.

The plan is made up front by the runner and travels inside each order as ordinary business data (the card
number, the address), so the services fail for their own reasons and the runner knows what to expect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

Fault = Literal["none", "decline", "poison"]

# Test card numbers, as payment providers publish them: the payment service's fake gateway reacts to them.
CARD_OK = "4242424242424242"
CARD_DECLINE = "4000000000000002"
CARD_SLOW = "4000000000000259"
CARD_SLOW_DECLINE = "4000000000009995"
SKUS = ("sku-apple", "sku-pear", "sku-plum", "sku-fig", "sku-kiwi")


@dataclass(frozen=True)
class FaultPlan:
    """One order and what was injected into it."""

    index: int
    order_id: str
    sku: str
    qty: int
    amount_cents: int
    fault: Fault
    slow: bool

    @property
    def card(self) -> str:
        if self.fault == "decline":
            return CARD_SLOW_DECLINE if self.slow else CARD_DECLINE
        return CARD_SLOW if self.slow else CARD_OK

    @property
    def address(self) -> dict[str, str]:
        """A poison order lacks the postcode: shipping's label code does not handle that (a code error)."""
        address = {"street": f"{self.index} Main St", "city": "Berlin", "postcode": f"{10000 + self.index}"}
        if self.fault == "poison":
            del address["postcode"]
        return address

    def payload(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "sku": self.sku,
            "qty": self.qty,
            "amount_cents": self.amount_cents,
            "card": self.card,
            "address": self.address,
        }


def plan_orders(count: int, *, seed: int, decline_rate: float, poison_rate: float, slow_rate: float) -> list[FaultPlan]:
    """The same seed and rates always give the same orders and the same faults."""
    for name, rate in (("decline_rate", decline_rate), ("poison_rate", poison_rate), ("slow_rate", slow_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {rate}")
    if decline_rate + poison_rate > 1.0:
        raise ValueError("decline_rate + poison_rate must not exceed 1")
    rng = random.Random(seed)
    plans = []
    for i in range(count):
        draw = rng.random()
        fault: Fault = "decline" if draw < decline_rate else "poison" if draw < decline_rate + poison_rate else "none"
        plans.append(
            FaultPlan(
                index=i,
                order_id=f"ord-{seed}-{i:05d}",
                sku=rng.choice(SKUS),
                qty=rng.randint(1, 3),
                amount_cents=rng.randint(500, 20_000),
                fault=fault,
                slow=rng.random() < slow_rate,
            )
        )
    return plans
