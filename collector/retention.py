"""How long each sink keeps logs, and the daily pruning that enforces it (collector/README.md, "Operating it").

CloudWatch Logs expires events itself once a log group has a retention policy; Elasticsearch/OpenSearch daily
indices and the embedded store are pruned by ``corrtrace prune`` and by the long-running collector once a day.
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

log = logging.getLogger("corrtrace.collector.retention")
DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_STORE_MB = 1024
PRUNE_EVERY_S = 86_400.0
_DAY_MS = 86_400_000
# the only values PutRetentionPolicy accepts
CLOUDWATCH_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def cloudwatch_days(days: int) -> int:
    """The smallest retention CloudWatch accepts that keeps at least ``days`` days (never deletes earlier)."""
    return next((d for d in CLOUDWATCH_DAYS if d >= days), CLOUDWATCH_DAYS[-1])


def expired_indices(names: Iterable[str], prefix: str, days: int, now_ms: int | None = None) -> list[str]:
    """The ``<prefix>-yyyy.mm.dd`` names whose whole day is more than ``days`` days old, oldest first.
    Anything else matching ``<prefix>-*`` (another tool's ``<prefix>-archive``, a typo) is not ours."""
    if days <= 0:
        return []
    pattern = re.compile(re.escape(prefix) + r"-(\d{4})\.(\d{2})\.(\d{2})")
    cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - days * _DAY_MS
    out = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        try:
            day = time.strptime("-".join(match.groups()), "%Y-%m-%d")
        except ValueError:
            continue
        day_end_ms = (calendar.timegm(day) + 86_400) * 1000  # UTC midnight after that day
        if day_end_ms <= cutoff:
            out.append(name)
    return sorted(out)


def ilm_policy(days: int) -> dict[str, Any]:
    """Elasticsearch ILM: delete an index ``days`` days after it was created (``es_lifecycle: native``)."""
    return {
        "phases": {"delete": {"min_age": f"{days}d", "actions": {"delete": {}}}},
        "_meta": {"managed_by": "corrtrace"},
    }


def ism_policy(prefix: str, days: int) -> dict[str, Any]:
    """OpenSearch ISM: the same rule, attached by its ``ism_template`` to every new ``<prefix>-*`` index."""
    return {
        "description": f"corrtrace: delete {prefix}-* indices {days} days after they were created",
        "default_state": "keep",
        "states": [
            {
                "name": "keep",
                "actions": [],
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": f"{days}d"}}],
            },
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [f"{prefix}-*"], "priority": 100}],
    }


def prune_sinks(sinks: Sequence[Any], days_for: Any, *, dry_run: bool = False) -> dict[str, list[str]]:
    """Run each sink's ``prune`` with its retention (``days_for(sink_name)``); what each removed, by sink.
    A sink that fails is logged and skipped: pruning never stops shipping."""
    removed: dict[str, list[str]] = {}
    for sink in sinks:
        if not hasattr(sink, "prune"):
            continue  # CloudWatch: the log group's retention policy expires events
        try:
            removed[sink.name] = sink.prune(days_for(sink.name), dry_run=dry_run)
        except Exception as exc:
            log.warning("retention: pruning %s failed, will try again next time: %s", sink.name, exc)
            continue
        if removed[sink.name] and not dry_run:
            log.info("retention: %s removed %s", sink.name, ", ".join(removed[sink.name]))
    return removed


class DailyPruner:
    """Prunes the sinks when the collector starts and every ``interval`` seconds after, in its own thread so
    a slow engine never holds up shipping."""

    def __init__(self, sinks: Sequence[Any], days_for: Any, interval: float = PRUNE_EVERY_S) -> None:
        self.sinks = sinks
        self.days_for = days_for
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="corrtrace-prune", daemon=True)

    def start(self) -> DailyPruner:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            prune_sinks(self.sinks, self.days_for)
            self.stop.wait(self.interval)

    def close(self) -> None:
        self.stop.set()
