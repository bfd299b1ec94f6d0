"""The failure plan: rates and a seed decide, the same seed gives the same run."""

from __future__ import annotations

import pytest
from corrtrace.demo.faults import CARD_DECLINE, CARD_OK, CARD_SLOW, CARD_SLOW_DECLINE, plan_orders


def test_same_seed_same_plan_and_other_seed_differs() -> None:
    a = plan_orders(200, seed=42, decline_rate=0.1, poison_rate=0.05, slow_rate=0.05)
    b = plan_orders(200, seed=42, decline_rate=0.1, poison_rate=0.05, slow_rate=0.05)
    c = plan_orders(200, seed=43, decline_rate=0.1, poison_rate=0.05, slow_rate=0.05)
    assert a == b
    assert [p.fault for p in a] != [p.fault for p in c]


def test_rates_are_roughly_honoured_and_zero_means_none() -> None:
    plans = plan_orders(2000, seed=1, decline_rate=0.2, poison_rate=0.1, slow_rate=0.0)
    declines = sum(p.fault == "decline" for p in plans)
    poison = sum(p.fault == "poison" for p in plans)
    assert 300 < declines < 500
    assert 120 < poison < 280
    assert not any(p.slow for p in plans)


def test_faults_travel_as_business_data() -> None:
    plans = plan_orders(400, seed=5, decline_rate=0.2, poison_rate=0.2, slow_rate=0.3)
    for plan in plans:
        payload = plan.payload()
        assert ("postcode" in payload["address"]) == (plan.fault != "poison")
        expected = {("decline", True): CARD_SLOW_DECLINE, ("decline", False): CARD_DECLINE}.get(
            (plan.fault, plan.slow), CARD_SLOW if plan.slow else CARD_OK
        )
        assert payload["card"] == expected
    assert len({p.order_id for p in plans}) == len(plans)


@pytest.mark.parametrize(
    "kwargs", [{"decline_rate": 1.5}, {"poison_rate": -0.1}, {"decline_rate": 0.7, "poison_rate": 0.7}]
)
def test_bad_rates_are_refused(kwargs: dict[str, float]) -> None:
    rates = {"decline_rate": 0.1, "poison_rate": 0.1, "slow_rate": 0.1, **kwargs}
    with pytest.raises(ValueError):
        plan_orders(10, seed=1, **rates)
