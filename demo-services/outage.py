"""The demo's manager-outage fault (``--manager-outage SECONDS``): once a third of the orders are done, the
manager process is stopped for SECONDS and started again on its port. Meanwhile services cannot register, so
the orders in flight fail and the ui writes those failures down in the manager's failure table: they must all
be rolled back, exactly once, after the manager is back (the trigger retries the stream until then)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from corrtrace.demo.processes import Supervisor


class ManagerOutage(threading.Thread):
    """Stops and restarts the ``txmanager`` child; ``window`` is (stopped_at, restarted_at) in epoch seconds."""

    def __init__(self, supervisor: Supervisor, restart: Callable[[], None], seconds: float, after_orders: int) -> None:
        super().__init__(daemon=True, name="manager-outage")
        self.supervisor, self.restart, self.seconds = supervisor, restart, seconds
        self.after_orders = max(1, after_orders)
        self.done = 0
        self.go = threading.Event()
        self.window: tuple[float, float] | None = None
        self.error: str | None = None

    def order_done(self, _outcome: Any = None) -> None:
        self.done += 1
        if self.done >= self.after_orders:
            self.go.set()

    def run(self) -> None:
        self.go.wait()
        stopped = time.time()
        try:
            self.supervisor.stop_child("txmanager")
            time.sleep(self.seconds)
            self.restart()
        except Exception as exc:  # reported: the run cannot pass without its manager
            self.error = f"{type(exc).__name__}: {exc}"
        self.window = (stopped, time.time())

    def report(self, reports: list[dict[str, Any]], failed_orders: int) -> dict[str, Any]:
        """What the fault did: how long, how many orders failed, how many failures were written meanwhile."""
        start, end = self.window or (0.0, 0.0)
        return {
            "seconds": self.seconds,
            "down_for": round(end - start, 2),
            "orders_failed": failed_orders,
            "failures_reported_while_down": sum(
                1 for r in reports if r["action"] == "rollback" and start <= r["reported_at"] <= end
            ),
            "error": self.error,
        }
