"""What every sink does: deliver a batch until each record is acknowledged or dead-lettered, and search."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from corrtrace.collector.record import Record


@dataclass
class SearchQuery:
    """One request's lines: a correlation id plus optional time window (epoch ms), service and level filters."""

    correlation_id: str
    since: int | None = None
    until: int | None = None
    service: str | None = None
    level: str | None = None
    limit: int = 10_000

    def accepts(self, event: dict[str, Any], ts: int) -> bool:
        """The client-side check, identical for every backend."""
        if event.get("correlation_id") != self.correlation_id:
            return False
        if self.since is not None and ts < self.since:
            return False
        if self.until is not None and ts > self.until:
            return False
        if self.service is not None and (event.get("service") or {}).get("name") != self.service:
            return False
        return self.level is None or str((event.get("log") or {}).get("level", "")).upper() == self.level.upper()


@dataclass
class SinkStats:
    delivered: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    requests: int = 0
    failures: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class Sink(Protocol):
    """``deliver`` returns once every record is stored or dead-lettered; it raises ``Stopped`` if asked to stop.

    ``idempotent`` sinks (Elasticsearch, embedded) are delivered first; CloudWatch, which cannot de-duplicate,
    last, so a crash repeats as little as possible there.
    """

    name: str
    idempotent: bool
    stats: SinkStats

    def deliver(self, records: Sequence[Record], stop: threading.Event | None = None) -> None: ...

    def close(self) -> None: ...


class Searchable(Protocol):
    def search(self, query: SearchQuery) -> list[dict[str, Any]]: ...
