"""A restarted engine keeps its alarm states: the same breach does not fire a second ALARM transition, and
correlation IDs already handed to the actions are not handed over again (issue 14 §4)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from corrtrace.alerts import AlarmNotification, AlertEngine, CallbackAction, builtin_alerts
from corrtrace.alerts.cli import alerts as alerts_cli
from corrtrace.alerts.evaluator import ALARM

T0 = 1_800_000_000.0  # a period boundary


def _failure(i: int) -> tuple[dict[str, Any], str]:
    event = {"message": "x", "correlation_id": f"req-{i}", "event": {"outcome": "failure"}}
    return event, orjson.dumps(event).decode()


def _run(state_file: Path | None, ids: range, now: float) -> list[AlarmNotification]:
    """One engine's life: feed failures one minute before ``now``, evaluate at ``now``."""
    seen: list[AlarmNotification] = []
    alerts = [a for a in builtin_alerts() if a.name == "business-failures"]
    engine = AlertEngine(alerts, [CallbackAction(seen.append)], clock=lambda: now, state_file=state_file)
    for i in ids:
        engine.feed(*_failure(i), timestamp=now - 55 + i % 10)
    engine.tick(now)
    return seen


def test_restart_does_not_fire_a_second_alarm_for_the_same_breach(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = _run(state, range(0, 3), T0 + 60)
    assert [(n.previous_state, n.state) for n in first] == [("INSUFFICIENT_DATA", ALARM)]
    assert sorted(first[0].correlation_ids) == ["req-0", "req-1", "req-2"]
    saved = json.loads(state.read_text())
    assert saved["alarms"]["business-failures"]["state"] == ALARM

    # restarted during the same breach: still ALARM, no transition; only the new ID goes to the actions
    again = _run(state, range(0, 4), T0 + 60)
    assert [(n.previous_state, n.state, n.correlation_ids) for n in again] == [(ALARM, ALARM, ("req-3",))]

    # without the state file the restart fires ALARM again and repeats every ID (what the file prevents)
    forgetful = _run(None, range(0, 4), T0 + 60)
    assert forgetful[0].previous_state != ALARM and len(forgetful[0].correlation_ids) == 4


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"[]",
        b"{not json",
        b'{"version": 99, "alarms": {}}',
        b'{"version": 1, "alarms": {"business-failures": {"state": "BOGUS"}}}',
    ],
)
def test_damaged_state_file_is_one_warning_and_a_fresh_start(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="corrtrace.alerts"):
        fired = _run(state, range(0, 2), T0 + 60)
    assert [n.state for n in fired] == [ALARM]
    assert json.loads(state.read_text())["alarms"]["business-failures"]["state"] == ALARM  # rewritten whole
    if content.startswith(b'{"version": 1'):
        return  # a bad entry is dropped quietly, the rest of the file is kept
    assert any(str(state) in r.getMessage() for r in caplog.records)


def test_cli_evaluate_keeps_state_in_the_file_it_is_given(tmp_path: Path) -> None:
    state = tmp_path / "nested" / "alerts-state.json"
    log = tmp_path / "app.log"
    lines = [
        {"@timestamp": "2027-01-15T08:00:05Z", "correlation_id": f"c-{i}", "event": {"outcome": "failure"}}
        for i in range(3)
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = CliRunner().invoke(alerts_cli, ["evaluate", "--state-file", str(state), str(log)])
    assert result.exit_code == 0, result.output
    assert "ALARM" in result.output
    assert "business-failures" in json.loads(state.read_text())["alarms"]
