"""Alarm evaluation against the tables of the AWS page on missing data.

Source: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
("How alarm state is evaluated when data is missing"; the same tables are in
awsdocs/amazon-cloudwatch-user-guide doc_source/AlarmThatSendsEmail.md). In the series, 0 is a non-breaching
datapoint, X a breaching one and - a missing one, oldest first; the alarm looks at the 5 most recent.
"""

from __future__ import annotations

import pytest
from corrtrace.alerts import AlarmEvaluator
from corrtrace.alerts.definitions import AlarmSpec
from corrtrace.alerts.evaluator import ALARM, INSUFFICIENT_DATA, OK, aggregate, decide

RETAIN = "retain"
MODES = ("missing", "ignore", "breaching", "notBreaching")

# (series, M, N, expected per mode: missing, ignore, breaching, notBreaching)
TABLES = [
    ("0 - X - X", 3, 3, (OK, OK, OK, OK)),
    ("0 - - - -", 3, 3, (OK, OK, OK, OK)),
    ("- - - - -", 3, 3, (INSUFFICIENT_DATA, RETAIN, ALARM, OK)),
    ("0 X X - X", 3, 3, (ALARM, ALARM, ALARM, ALARM)),
    ("- - - - X", 3, 3, (INSUFFICIENT_DATA, RETAIN, ALARM, OK)),
    ("X - - - -", 3, 3, (ALARM, RETAIN, ALARM, OK)),
    ("0 - X - X", 2, 3, (ALARM, ALARM, ALARM, ALARM)),
    ("0 0 X 0 X", 2, 3, (ALARM, ALARM, ALARM, ALARM)),
    ("0 - X - -", 2, 3, (OK, OK, ALARM, OK)),
    ("- - - - 0", 2, 3, (OK, OK, ALARM, OK)),
    ("- - - - X", 2, 3, (INSUFFICIENT_DATA, RETAIN, ALARM, OK)),
]


def series(text: str) -> list[float | None]:
    return [{"0": 0.0, "X": 5.0, "-": None}[c] for c in text.split()]


CASES = [
    (text, m, n, mode, expected[i], current)
    for text, m, n, expected in TABLES
    for i, mode in enumerate(MODES)
    for current in (OK, ALARM)
]


@pytest.mark.parametrize(("text", "m", "n", "mode", "expected", "current"), CASES)
def test_aws_missing_data_tables(text: str, m: int, n: int, mode: str, expected: str, current: str) -> None:
    state = decide(
        series(text),
        threshold=1.0,
        comparison="GreaterThanOrEqualToThreshold",
        evaluation_periods=n,
        datapoints_to_alarm=m,
        treat_missing_data=mode,
        current_state=current,
    )
    assert state == (current if expected == RETAIN else expected)


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("Sum", 10.0), ("SampleCount", 4.0), ("Average", 2.5), ("Minimum", 1.0), ("Maximum", 4.0), ("p50", 2.0)],
)
def test_period_aggregation(statistic: str, expected: float) -> None:
    assert aggregate(statistic, [1.0, 2.0, 3.0, 4.0]) == expected


def _spec(**kw: object) -> AlarmSpec:
    base: dict[str, object] = dict(
        statistic="Sum", period=60, evaluation_periods=3, datapoints_to_alarm=2, threshold=3.0
    )
    base.update(kw)
    return AlarmSpec(**base)  # type: ignore[arg-type]


def test_evaluator_aggregates_periods_and_transitions() -> None:
    ev = AlarmEvaluator("a", _spec(treat_missing_data="notBreaching"))
    t0 = 6000.0  # period boundary
    for second in (1, 2, 3):  # sum 3 in period 0: breaching
        ev.add(1.0, t0 + second)
    ev.add(1.0, t0 + 61)  # sum 1 in period 1: not breaching
    assert ev.evaluate(t0 + 120).new_state == OK  # type: ignore[union-attr]
    ev.add(2.0, t0 + 125)
    ev.add(2.0, t0 + 130)  # sum 4 in period 2: breaching -> 2 of 3
    transition = ev.evaluate(t0 + 180)
    assert transition is not None and transition.old_state == OK and transition.new_state == ALARM
    assert "2 datapoints" not in transition.reason and "threshold (3)" in transition.reason
    assert ev.evaluate(t0 + 181) is None  # no change, no transition
    # later, all periods non-breaching/missing -> OK again
    transition = ev.evaluate(t0 + 600)
    assert transition is not None and transition.new_state == OK


def test_evaluator_ignore_keeps_state_when_data_stops() -> None:
    ev = AlarmEvaluator("a", _spec(evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="ignore"))
    ev.add(5.0, 30.0)
    assert ev.evaluate(60.0).new_state == ALARM  # type: ignore[union-attr]
    assert ev.evaluate(3600.0) is None and ev.state == ALARM


def test_evaluator_missing_goes_insufficient_when_data_stops() -> None:
    ev = AlarmEvaluator("a", _spec(evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="missing"))
    ev.add(5.0, 30.0)
    assert ev.evaluate(60.0).new_state == ALARM  # type: ignore[union-attr]
    assert ev.evaluate(3600.0).new_state == INSUFFICIENT_DATA  # type: ignore[union-attr]


def test_less_than_comparison() -> None:
    ev = AlarmEvaluator(
        "low", _spec(statistic="Average", evaluation_periods=1, datapoints_to_alarm=1, comparison="LessThanThreshold")
    )
    ev.add(1.0, 10.0)
    assert ev.evaluate(60.0).new_state == ALARM  # type: ignore[union-attr]
