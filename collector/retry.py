"""Exponential backoff with full jitter that a stop request interrupts, and the dead-letter file."""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


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


class DeadLetters:
    """Append-only JSON lines of events no sink will ever accept, with the reason; counted, never silent."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self._lock = threading.Lock()

    def add(self, sink: str, reason: str, raw: bytes, doc_id: str | None = None, **extra: Any) -> None:
        entry = {"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sink": sink,
                 "reason": reason, "id": doc_id, **extra, "event": raw.decode("utf-8", "replace")}
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            self.count += 1
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                fh.write(line)
