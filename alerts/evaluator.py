"""CloudWatch alarm semantics on local datapoints.

Period aggregation per statistic, M out of N datapoints, and the four treat-missing-data modes as the AWS page
"Configuring how CloudWatch alarms treat missing data" states them (its two tables are reproduced by the
tests): the evaluation range is the N + 2 most recent periods; with at least N real datapoints the most recent N
decide; with fewer, missing ones are filled in "as few times as possible" by the chosen treatment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from corrtrace.alerts.definitions import AlarmSpec, AlarmState, Comparison

OK, ALARM, INSUFFICIENT_DATA = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA


def aggregate(statistic: str, values: Sequence[float]) -> float:
    """One period's datapoint from its samples."""
    if statistic == "SampleCount":
        return float(len(values))
    if statistic == "Sum":
        return float(math.fsum(values))
    if statistic == "Average":
        return float(math.fsum(values) / len(values))
    if statistic == "Minimum":
        return float(min(values))
    if statistic == "Maximum":
        return float(max(values))
    if statistic.startswith("p"):  # nearest-rank percentile
        ordered = sorted(values)
        rank = max(1, math.ceil(float(statistic[1:]) / 100.0 * len(ordered)))
        return float(ordered[rank - 1])
    raise ValueError(f"unknown statistic {statistic!r}")


def decide(
    values: Sequence[float | None],
    *,
    threshold: float,
    comparison: Comparison | str,
    evaluation_periods: int,
    datapoints_to_alarm: int,
    treat_missing_data: str,
    current_state: AlarmState = INSUFFICIENT_DATA,
) -> AlarmState:
    """The alarm state for the datapoints of the evaluation range (oldest first, None = missing)."""
    breaches = Comparison(comparison).breaches
    n, m = evaluation_periods, datapoints_to_alarm
    real = [v for v in values if v is not None]
    if not real:
        return {"missing": INSUFFICIENT_DATA, "ignore": current_state, "breaching": ALARM, "notBreaching": OK}[
            treat_missing_data
        ]
    if len(real) >= n:
        return ALARM if sum(breaches(v, threshold) for v in real[-n:]) >= m else OK
    fill = n - len(real)
    bad = sum(breaches(v, threshold) for v in real)
    good = len(real) - bad
    if treat_missing_data == "breaching":
        bad += fill
    elif treat_missing_data == "notBreaching":
        good += fill
    else:  # missing / ignore: missing datapoints count as neither
        if bad >= m:
            return ALARM
        if good:
            return OK
        oldest = values[0]
        if treat_missing_data == "missing" and oldest is not None and breaches(oldest, threshold):
            return ALARM  # the AWS table's sixth row: oldest evaluated point breaching, none non-breaching
        return INSUFFICIENT_DATA if treat_missing_data == "missing" else current_state
    return ALARM if bad >= m else OK


@dataclass
class Transition:
    """A state change, with the periods whose datapoints were evaluated (for collecting correlation IDs)."""

    alarm_name: str
    old_state: AlarmState
    new_state: AlarmState
    reason: str
    timestamp: float
    periods: list[float] = field(default_factory=list)


class AlarmEvaluator:
    """One alarm: collects samples into periods and evaluates them with CloudWatch's rules."""

    def __init__(
        self, name: str, spec: AlarmSpec, *, state: AlarmState = INSUFFICIENT_DATA, keep_periods: int = 0
    ) -> None:
        self.name = name
        self.spec = spec
        self.state = AlarmState(state)
        self.range = spec.evaluation_periods + 2
        self._keep = max(keep_periods, self.range + 2)
        self._samples: dict[float, list[float]] = {}

    def period_start(self, timestamp: float) -> float:
        return float(math.floor(timestamp / self.spec.period) * self.spec.period)

    def add(self, value: float, timestamp: float) -> None:
        self._samples.setdefault(self.period_start(timestamp), []).append(value)

    def datapoint(self, start: float) -> float | None:
        samples = self._samples.get(start)
        return aggregate(self.spec.statistic, samples) if samples else None

    def evaluation_periods_at(self, now: float) -> list[float]:
        """Start times of the evaluation range: the most recent complete periods before ``now``."""
        last_end = self.period_start(now)
        return [last_end - self.spec.period * k for k in range(self.range, 0, -1)]

    def evaluate(self, now: float) -> Transition | None:
        """Evaluate at ``now``; returns the transition when the state changes."""
        starts = self.evaluation_periods_at(now)
        values = [self.datapoint(s) for s in starts]
        spec = self.spec
        new = decide(
            values,
            threshold=spec.threshold,
            comparison=spec.comparison,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            treat_missing_data=spec.treat_missing_data,
            current_state=self.state,
        )
        self._prune(starts[0])
        if new == self.state:
            return None
        old, self.state = self.state, new
        return Transition(
            self.name,
            old,
            new,
            self._reason(values, starts, new),
            now,
            [s for s, v in zip(starts, values, strict=True) if v is not None],
        )

    def _reason(self, values: Sequence[float | None], starts: Sequence[float], new: AlarmState) -> str:
        spec = self.spec
        real = [(v, s) for v, s in zip(values, starts, strict=True) if v is not None][-spec.evaluation_periods :]
        if not real:
            return f"no datapoints in the last {len(values)} periods (treat missing data: {spec.treat_missing_data})"
        shown = ", ".join(f"{v:g}" for v, _ in real)
        return (
            f"Threshold Crossed: {len(real)} out of the last {spec.evaluation_periods} datapoints [{shown}] "
            f"{'were' if new == ALARM else 'were not enough'} {Comparison(spec.comparison).words} "
            f"the threshold ({spec.threshold:g}) "
            f"(minimum {spec.datapoints_to_alarm} datapoint(s) for ALARM)"
        )

    def _prune(self, oldest_needed: float) -> None:
        cutoff = oldest_needed - self.spec.period * self._keep
        for start in [s for s in self._samples if s < cutoff]:
            del self._samples[start]
