"""Stream jam: the same correlation ID failing N times within a window is a poison record blocking a shard.

The talk: a stream-triggered Lambda that fails does not move the shard forward, so the same record (the same
correlation ID) fails again and again. Counting failures per ID finds it; the alert fires once per jam.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Jam:
    correlation_id: str
    failures: int
    first_seen: float
    last_seen: float


class JamDetector:
    """Failures per correlation ID in a sliding window; ``record`` returns a ``Jam`` when the threshold is hit.

    Each ID keeps only its last ``threshold`` failure times: there are ``threshold`` failures within the window
    exactly when the last ``threshold`` are, so a poison record failing thousands of times a second costs
    ``threshold`` floats, not one per failure."""

    def __init__(self, threshold: int = 3, window: float = 300.0, *, max_ids: int = 100_000) -> None:
        if threshold < 2:
            raise ValueError("jam threshold must be at least 2 failures")
        self.threshold = threshold
        self.window = window
        self.max_ids = max_ids
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._jammed: set[str] = set()

    def record(self, correlation_id: str, timestamp: float) -> Jam | None:
        times = self._failures.get(correlation_id)
        if times is None:
            times = self._failures[correlation_id] = deque(maxlen=self.threshold)
            if len(self._failures) > self.max_ids:
                old, _ = self._failures.popitem(last=False)
                self._jammed.discard(old)
        else:
            self._failures.move_to_end(correlation_id)
        times.append(timestamp)
        while times and times[0] < timestamp - self.window:
            times.popleft()
        if len(times) < self.threshold:
            self._jammed.discard(correlation_id)
            return None
        if correlation_id in self._jammed:
            return None  # already reported for this jam
        self._jammed.add(correlation_id)
        return Jam(correlation_id, len(times), times[0], timestamp)

    def failures(self, correlation_id: str) -> int:
        """Failures of ``correlation_id`` within the window, counted up to the threshold."""
        return len(self._failures.get(correlation_id, ()))
