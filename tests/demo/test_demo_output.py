"""The demo's last screen: what each injected kind became, tables on a terminal, compact plain lines elsewhere."""

from __future__ import annotations

import io

from corrtrace.demo.runner import DemoReport
from corrtrace.demo.summary import print_report
from corrtrace.demo.verify import Verification
from rich.console import Console

FLOW = [
    {
        "@timestamp": "2026-11-30T10:00:00.000Z",
        "correlation_id": "c1",
        "service": {"name": "ui"},
        "log": {"level": "info"},
        "message": "POST /orders " + "x" * 300,
        "http": {"response": {"status_code": 500}},
    }
]


def report() -> DemoReport:
    return DemoReport(
        orders=60,
        ok=51,
        failed=9,
        expected_failures={"decline": 5, "poison": 4, "slow": 1},
        became={"decline": {"failed": 5}, "poison": {"failed": 4}, "slow": {"succeeded": 1}},
        verification=Verification(failed_orders=9, rolled_back_verified=9),
        mdm={"checked": 60, "inconsistencies": []},
        flow=FLOW,
        flow_correlation_id="c1",
    )


def render(terminal: bool) -> str:
    out = io.StringIO()
    print_report(Console(file=out, force_terminal=terminal, width=80), report(), "corrtrace search c1")
    return out.getvalue()


def test_summary_says_what_each_injected_kind_became() -> None:
    text = render(False)
    assert "orders: 60 sent: 51 succeeded, 9 failed" in text
    assert (
        "injected: 5 declined cards (payment refused) -> 5 failed; 4 poison orders (shipping raised) -> "
        "4 failed; 1 slow order (slower than the latency threshold) -> 1 succeeded"
    ) in text


def test_plain_lines_outside_a_terminal_and_tables_on_one() -> None:
    plain = render(False)
    assert "┃" not in plain and "━" not in plain and "\x1b" not in plain
    flow = [line for line in plain.splitlines() if line.startswith("  +0ms")]
    assert flow == ["  +0ms ui info 500: POST /orders " + "x" * 87]  # one line per log line, message cut at 100
    assert "━" in render(True)  # a terminal gets the tables
