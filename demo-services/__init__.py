"""corrtrace.demo: a five-service mesh (ui, catalog, checkout, payment, shipping) plus aggregation, with
failures that roll back, an MDM consistency check, and the runner behind ``corrtrace demo``.

The heavy names (the runner, the MDM check) load on first use so ``corrtrace demo --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from corrtrace.demo.faults import FaultPlan, plan_orders
from corrtrace.demo.settings import DemoSettings, Mesh

_LAZY = {
    "Demo": "corrtrace.demo.runner",
    "DemoError": "corrtrace.demo.runner",
    "DemoReport": "corrtrace.demo.runner",
    "run_demo": "corrtrace.demo.runner",
    "run_check": "corrtrace.demo.mdm",
    "scheduled_handler": "corrtrace.demo.mdm",
    "StreamPoller": "corrtrace.eventsource",
    "PollerSettings": "corrtrace.eventsource",
}

__all__ = ["DemoSettings", "FaultPlan", "Mesh", "plan_orders", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corrtrace.demo' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
