"""The structured log lines of the transaction manager (``event.dataset = corrtrace.txmanager``).

One line per participant outcome, with the participant in ``service.target.name`` so that dashboards draw the
edge manager -> participant. A failed attempt that will be retried is logged with ``event.outcome = unknown``:
the call's final outcome is not known yet, and dashboards counting failures must not count retries.
"""

from __future__ import annotations

import logging
from typing import Any

DATASET = "corrtrace.txmanager"
log = logging.getLogger("corrtrace.txmanager")


def outcome(
    action: str,
    outcome: str,
    correlation_id: str,
    participant: str | None,
    message: str,
    *,
    level: int = logging.INFO,
    duration_ns: int | None = None,
    status: int | None = None,
    **labels: Any,
) -> None:
    """Log one rollback/commit outcome; ``labels`` become ``labels.*`` (attempt, final state...).

    ``labels.scope`` tells a participant's outcome (``participant``, with ``service.target.name``) from the
    transaction's summary line (``transaction``), so dashboards can count either without double counting.
    """
    extra: dict[str, Any] = {
        "event.dataset": DATASET,
        "event.action": action,
        "event.outcome": outcome,
        "correlation_id": correlation_id,
        "labels": {
            "scope": "participant" if participant is not None else "transaction",
            **{k: v for k, v in labels.items() if v is not None},
        },
    }
    if participant is not None:
        extra["service.target.name"] = participant
    if duration_ns is not None:
        extra["event.duration"] = duration_ns
    if status is not None:
        extra["http.response.status_code"] = status
    log.log(level, message, extra=extra)


def note(correlation_id: str | None, message: str, *, level: int = logging.INFO, **labels: Any) -> None:
    """A line about the manager's own work (trigger received, resume), without an outcome."""
    extra: dict[str, Any] = {"event.dataset": DATASET, "labels": {k: v for k, v in labels.items() if v is not None}}
    if correlation_id is not None:
        extra["correlation_id"] = correlation_id
    log.log(level, message, extra=extra)
