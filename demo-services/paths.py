"""Which path triggered each rollback of a demo run: a failure record (the manager's failure table), the
code-error alarm, the stream-jam alert or an MDM repair, read from the manager's transaction (its ``source``
is the first trigger's) and the failure table (which requests were written down, by whom)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from corrtrace.demo import aws
from corrtrace.demo.settings import Mesh
from corrtrace.demo.verify import OrderOutcome

ALERT_PATHS = {"code-errors": "code-error alarm", "stream-jam": "stream-jam alert", "mdm": "MDM repair"}
FAILURE_RECORD = "failure record"


def failure_reports(mesh: Mesh) -> list[dict[str, Any]]:
    """Every report in the failure table: correlation ID, action, source, reported_at (epoch seconds)."""
    ddb = aws.client(mesh, "dynamodb")
    found = []
    for page in ddb.get_paginator("scan").paginate(TableName=mesh.failure_table):
        for item in page.get("Items", []):
            values = {k: v.get("S", "") for k, v in item.items()}
            try:
                at = datetime.fromisoformat(values.get("reported_at", "").replace("Z", "+00:00")).timestamp()
            except ValueError:
                at = 0.0
            found.append(
                {
                    "correlation_id": values.get("correlation_id", ""),
                    "action": values.get("action", ""),
                    "source": values.get("source", ""),
                    "reported_at": at,
                }
            )
    return found


def path_of(transaction: dict[str, Any], reported: dict[str, set[str]]) -> str:
    source = str(transaction.get("source") or "")
    if source in reported.get(str(transaction.get("correlation_id")), set()):
        return FAILURE_RECORD
    return ALERT_PATHS.get(source, f"direct call ({source or 'unknown'})")


def rollback_paths(
    mesh: Mesh, outcomes: list[OrderOutcome], secret: str, reports: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per rolled-back request: order, injected fault, the path that triggered it, triggers counted."""
    from corrtrace.txmanager import TxManagerClient, TxManagerError

    reported: dict[str, set[str]] = {}
    for r in reports:
        if r["action"] == "rollback":
            reported.setdefault(r["correlation_id"], set()).add(r["source"])
    rows = []
    with TxManagerClient(mesh.url("txmanager"), secret) as manager:
        for outcome in outcomes:
            if not outcome.expected_failure and outcome.http_status == 201:
                continue  # placed: it committed, or a rollback of it shows up as a verification problem
            try:
                tx = manager.status(outcome.correlation_id)
            except TxManagerError:
                continue
            if tx.get("action") != "rollback":
                continue
            rows.append(
                {
                    "correlation_id": outcome.correlation_id,
                    "order_id": outcome.plan.order_id,
                    "fault": "outage" if outcome.outage else outcome.plan.fault,
                    "path": path_of(tx, reported),
                    "triggers": tx.get("triggers", 0),
                    "state": tx.get("state"),
                }
            )
    return rows


def path_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(r["path"]) for r in rows).most_common())
