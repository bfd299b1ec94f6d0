"""Print a demo report for people (rich tables) — the runner's last screen."""

from __future__ import annotations

from typing import Any

from corrtrace.demo.paths import path_counts
from corrtrace.demo.runner import DemoReport
from rich.console import Console
from rich.table import Table


def flow_table(events: list[dict[str, Any]]) -> Table:
    """One request's lines as ``corrtrace search`` shows them, messages cut to 100 characters, no stacks."""
    from corrtrace.collector.search import timeline_rows, timeline_table

    return timeline_table(timeline_rows(events)[1], stacks=False, max_message=100)


# injected kind -> (noun, what its failure means)
INJECTED = {
    "decline": ("declined card", "payment refused"),
    "poison": ("poison order", "shipping raised"),
    "slow": ("slow order", "slower than the latency threshold"),
    "outage": ("order in the manager outage", "could not register"),
}


def injected_outcomes(report: DemoReport) -> str:
    """What each injected kind became, e.g. ``5 declined cards (payment refused) -> 5 failed``."""
    parts = []
    for kind, (noun, means) in INJECTED.items():
        count = report.expected_failures.get(kind, 0)
        if count:
            became = report.became.get(kind, {})
            ends = ", ".join(f"{n} {end}" for end, n in sorted(became.items())) or "none seen"
            parts.append(f"{count} {noun}{'s' if count != 1 else ''} ({means}) -> {ends}")
    return "; ".join(parts) or "none"


def rollback_table(rows: list[dict[str, Any]]) -> Table:
    """Each rollback and the path that triggered it (later triggers of the same request are counted, not run)."""
    table = Table(title="rollbacks", show_edge=False, pad_edge=False, title_justify="left")
    for name in ("order", "injected", "triggered by", "triggers", "state"):
        table.add_column(name)
    for row in rows:
        table.add_row(row["order_id"], row["fault"], row["path"], str(row["triggers"]), str(row["state"]))
    return table


def summary_rows(report: DemoReport) -> list[tuple[str, str]]:
    """The report's headline rows, (label, text), for the table on a terminal or plain lines elsewhere."""
    v = report.verification
    rows = [
        ("orders", f"{report.orders} sent: {report.ok} succeeded, {report.failed} failed"),
        ("injected", injected_outcomes(report)),
        (
            "rollbacks",
            f"{v.rolled_back_verified} of {v.failed_orders} failed requests rolled back exactly once "
            "in catalog, checkout and payment (checked in each service's database)",
        ),
    ]
    alerts = sorted({str(a.get("alert") or a.get("alarm_name")) for a in report.alerts})
    rows.append(("alerts fired", ", ".join(alerts) or "none"))
    jam = report.shipping
    if jam:
        rows.append(
            (
                "shipping stream",
                f"{jam.get('invocations', 0)} invocations, {jam.get('retries', 0)} retries, "
                f"{jam.get('bisects', 0)} bisects, {len(jam.get('skipped', []))} poison "
                f"records skipped, longest jam {jam.get('longest_jam_seconds', 0)} s",
            )
        )
    if report.aggregation:
        rows.append(("aggregation", ", ".join(f"{k}: {n}" for k, n in sorted(report.aggregation.items()))))
    if report.rollbacks:
        counts = ", ".join(f"{path} {n}" for path, n in path_counts(report.rollbacks).items())
        rows.append(("rollbacks triggered by", counts))
    if report.manager_outage:
        out = report.manager_outage
        rows.append(
            (
                "manager outage",
                f"stopped for {out['down_for']} s: {out['orders_failed']} orders failed (could "
                f"not register), {out['failures_reported_while_down']} failure records written "
                "while it was down" + (f"; {out['error']}" if out["error"] else ""),
            )
        )
    found = report.mdm.get("inconsistencies", [])
    rows.append(("MDM check", f"{report.mdm.get('checked', 0)} requests checked, {len(found)} inconsistencies"))
    if report.dashboards:
        rows.append(("dashboards", f"{len(report.dashboards)} files under {report.dashboards[0].rsplit('/', 2)[0]}"))
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.phases.items())
    rows.append(("time", f"{report.seconds:.1f} s ({phases})"))
    return rows


def plain_flow(events: list[dict[str, Any]]) -> list[str]:
    """The flow as one short line per log line: what a log file or a CI page shows best."""
    from corrtrace.collector.search import timeline_rows

    lines = []
    for row in timeline_rows(events)[1]:
        target = f"->{row['target']}" if row["target"] else ""
        status = "" if row["status"] is None else f" {row['status']}"
        took = "" if row["duration_ms"] is None else f" {row['duration_ms']:.1f}ms"
        lines.append(
            f"  {row['offset_ms']:+d}ms {row['service']}{target} {row['level']}{status}{took}: "
            f"{str(row['message'])[:100]}"
        )
    return lines


def print_report(console: Console, report: DemoReport, search_hint: str) -> None:
    """On a terminal, rich tables; otherwise (a pipe, a file, CI) compact plain lines that never wrap."""
    v = report.verification
    found = report.mdm.get("inconsistencies", [])
    plain = not console.is_terminal
    if plain:
        for label, text in summary_rows(report):
            console.print(f"{label}: {text}", markup=False, highlight=False, soft_wrap=True)
    else:
        head = Table(title="corrtrace demo", show_header=False, title_justify="left")
        head.add_column(style="bold")
        head.add_column()
        for label, text in summary_rows(report):
            head.add_row(label, text)
        console.print(head)
    if report.rollbacks:
        if plain:
            for row in report.rollbacks:
                console.print(
                    f"rollback {row['order_id']} ({row['fault']}): {row['path']}, "
                    f"{row['triggers']} trigger(s), {row['state']}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        else:
            console.print(rollback_table(report.rollbacks))
    for problem in v.problems[:20]:
        console.print(f"[red]not rolled back:[/red] {problem}")
    for item in found[:20]:
        console.print(f"[red]MDM:[/red] {item['correlation_id']} {item['kind']}: {item['detail']}")
    if report.flow_correlation_id:
        console.print(f"\n[bold]One failed request[/bold] ({report.flow_correlation_id}), as `{search_hint}` shows it:")
        if plain:
            for line in plain_flow(report.flow):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            console.print(flow_table(report.flow))
    verdict = "[green]PASSED[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(
        f"\n{verdict}: every failed request rolled back everywhere and MDM clean"
        if report.passed
        else f"\n{verdict}: see the problems above"
    )
