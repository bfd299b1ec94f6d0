"""``corrtrace alerts``: test-pattern behaves like TestMetricFilter; evaluate reports alarms from log files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from corrtrace.alerts.cli import alerts

from corrtrace.cli import main

APACHE = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'


def test_test_pattern_json_matches_testmetricfilter_shape(tmp_path: Path) -> None:
    events = tmp_path / "events.txt"
    events.write_text("no match here\n" + APACHE + "\n")
    result = CliRunner().invoke(
        main,
        [
            "alerts",
            "test-pattern",
            "--pattern",
            "[..., status_code=404, size]",
            "--event",
            "x y",
            "--events-file",
            str(events),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body == {
        "matches": [
            {
                "eventNumber": 2,
                "eventMessage": APACHE,
                "extractedValues": {
                    "$1": "127.0.0.1",
                    "$2": "-",
                    "$3": "frank",
                    "$4": "10/Oct/2000:13:25:15 -0700",
                    "$5": "GET /index.html HTTP/1.0",
                    "$status_code": "404",
                    "$size": "1534",
                },
            },
        ]
    }


def test_test_pattern_terms_extract_nothing_and_plain_output() -> None:
    result = CliRunner().invoke(alerts, ["test-pattern", "-p", "ERROR -WARN", "--event", "ERROR a", "--event", "WARN"])
    assert result.exit_code == 0 and "0: ERROR a" in result.output
    result = CliRunner().invoke(alerts, ["test-pattern", "-p", "ERROR", "--event", "ERROR a", "--json"])
    assert json.loads(result.output)["matches"][0]["extractedValues"] == {}


def test_invalid_pattern_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "corrtrace.cli", "alerts", "test-pattern", "-p", "{ $.a IS NOT NULL }", "--event", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "position 9" in lines[0] and "IS NOT" in lines[0]
    assert proc.stdout == ""


def test_missing_events_is_bad_input() -> None:
    result = CliRunner().invoke(alerts, ["test-pattern", "-p", "ERROR"])
    assert result.exit_code == 2


def test_evaluate_reports_alarm_with_correlation_ids(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    lines = [
        {"@timestamp": "2026-01-01T00:00:01Z", "correlation_id": "r1", "event": {"outcome": "failure"}},
        {"@timestamp": "2026-01-01T00:00:02Z", "correlation_id": "r2", "event": {"outcome": "success"}},
        {"@timestamp": "2026-01-01T00:00:03Z", "correlation_id": "r3", "event": {"outcome": "failure"}},
        {"@timestamp": "2026-01-01T00:02:00Z", "correlation_id": "r4", "event": {"outcome": "success"}},
    ]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = CliRunner().invoke(alerts, ["evaluate", str(log), "--json"])
    assert result.exit_code == 0, result.output
    items = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    fired = [i for i in items if i["alarm_name"] == "business-failures" and i["state"] == "ALARM"]
    assert len(fired) == 1 and fired[0]["correlation_ids"] == ["r1", "r3"]
    assert not [i for i in items if i["alarm_name"] == "errors-and-exceptions" and i["state"] == "ALARM"]


def test_evaluate_reads_a_huge_line_in_bounded_pieces(tmp_path: Path) -> None:
    """A 40 MB line among the events was read whole (and copied twice more); it now comes in pieces of at most
    ``MAX_LINE``, as with ``--follow``, and the events around it are evaluated as before."""
    import tracemalloc

    log = tmp_path / "app.jsonl"
    event = {"@timestamp": "2026-01-01T00:00:01Z", "correlation_id": "r1", "event": {"outcome": "failure"}}
    with log.open("w") as f:
        f.write(
            json.dumps(event) + "\n" + "x" * (40 << 20) + "\n" + json.dumps({**event, "correlation_id": "r3"}) + "\n"
        )
    tracemalloc.start()
    try:
        result = CliRunner().invoke(alerts, ["evaluate", str(log), "--json"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    fired = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    assert [
        i["correlation_ids"] for i in fired if i["alarm_name"] == "business-failures" and i["state"] == "ALARM"
    ] == [["r1", "r3"]]
    assert peak < 20 << 20, f"peak {peak >> 20} MB"


def test_help() -> None:
    for args in (["alerts", "--help"], ["alerts", "deploy", "--help"], ["alerts", "evaluate", "--help"]):
        assert CliRunner().invoke(main, args).exit_code == 0
