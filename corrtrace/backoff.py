"""Exponential backoff with jitter, one rule for every retry loop in corrtrace (collector sinks, the transaction
manager's client, the Grafana client): delays ``initial * factor**n`` capped at ``maximum``, each drawn from
[delay/2, delay] so that many clients retrying at once spread out; a stop request interrupts the wait."""

from __future__ import annotations

import gc
import random
import threading
import time
from dataclasses import dataclass, replace


class Stopped(Exception):
    """The collector is stopping while a delivery was still being retried; nothing was acknowledged."""


@dataclass
class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each drawn uniformly from [delay/2, delay]."""

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    attempt: int = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def wait(self, stop: threading.Event | None) -> None:
        """Sleep the next delay; raise ``Stopped`` if ``stop`` is set before or during it.

        A failed HTTP call leaves exception/traceback cycles that pin its multi-megabyte request body until the
        cyclic GC runs; collecting here (only on the failure path) keeps memory flat while a sink is down."""
        gc.collect()
        delay = self.next_delay()
        if stop is None:
            time.sleep(delay)
            return
        if stop.wait(delay):
            raise Stopped()

    def fresh(self) -> Backoff:
        """A new schedule with these settings, from the first delay (one per delivery or call)."""
        return replace(self, attempt=0)
