"""Print a demo report for people (rich tables) — the runner's last screen."""

from __future__ import annotations

from typing import Any

from corrtrace.demo.runner import DemoReport
from rich.console import Console
from rich.table import Table


def flow_table(events: list[dict[str, Any]]) -> Table:
    """One request's lines as ``corrtrace search`` shows them (the collector's timeline rows)."""
    from corrtrace.collector.search import timeline_rows

    _services, rows = timeline_rows(events)
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("+ms", "right"), ("service", "left"), ("level", "left"), ("status", "right"),
                          ("duration", "right"), ("message", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        target = f" -> {row['target']}" if row["target"] else ""
        table.add_row(
            f"{row['offset_ms']:+d}", row["service"] + target, row["level"],
            "" if row["status"] is None else str(row["status"]),
            "" if row["duration_ms"] is None else f"{row['duration_ms']:.1f} ms",
            str(row["message"])[:100],
        )
    return table


def print_report(console: Console, report: DemoReport, search_hint: str) -> None:
    v = report.verification
    head = Table(title="corrtrace demo", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    exp = report.expected_failures
    head.add_row("orders", f"{report.orders} sent: {report.ok} succeeded, {report.failed} failed "
                           f"(injected: {exp.get('decline', 0)} declines, {exp.get('poison', 0)} poison, "
                           f"{exp.get('slow', 0)} slow)")
    head.add_row("rollbacks", f"{v.rolled_back_verified} of {v.failed_orders} failed requests rolled back exactly once "
                              "in catalog, checkout and payment (checked in each service's database)")
    alerts = sorted({str(a.get("alert") or a.get("alarm_name")) for a in report.alerts})
    head.add_row("alerts fired", ", ".join(alerts) or "none")
    jam = report.shipping
    if jam:
        head.add_row("shipping stream", f"{jam.get('invocations', 0)} invocations, {jam.get('retries', 0)} retries, "
                                        f"{jam.get('bisects', 0)} bisects, {len(jam.get('skipped', []))} poison "
                                        f"records skipped, longest jam {jam.get('longest_jam_seconds', 0)} s")
    if report.aggregation:
        head.add_row("aggregation", ", ".join(f"{k}: {n}" for k, n in sorted(report.aggregation.items())))
    found = report.mdm.get("inconsistencies", [])
    head.add_row("MDM check", f"{report.mdm.get('checked', 0)} requests checked, {len(found)} inconsistencies")
    if report.dashboards:
        head.add_row("dashboards", f"{len(report.dashboards)} files under {report.dashboards[0].rsplit('/', 2)[0]}")
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.phases.items())
    head.add_row("time", f"{report.seconds:.1f} s ({phases})")
    console.print(head)
    for problem in v.problems[:20]:
        console.print(f"[red]not rolled back:[/red] {problem}")
    for item in found[:20]:
        console.print(f"[red]MDM:[/red] {item['correlation_id']} {item['kind']}: {item['detail']}")
    if report.flow_correlation_id:
        console.print(f"\n[bold]One failed request[/bold] ({report.flow_correlation_id}), as `{search_hint}` shows it:")
        console.print(flow_table(report.flow))
    verdict = "[green]PASSED[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(f"\n{verdict}: every failed request rolled back everywhere and MDM clean"
                  if report.passed else f"\n{verdict}: see the problems above")
