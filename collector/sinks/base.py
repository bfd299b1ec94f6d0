"""What every sink does: deliver a batch until each record is acknowledged or dead-lettered, and search."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from corrtrace.collector.record import Record
from corrtrace.collector.retry import DeadLetters

MAX_SEARCH_ID = 1024  # the longest id Elasticsearch indexes (the template's keyword ``ignore_above``)


def search_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be searched for, else None. Any id a stored line can carry is searchable, other
    stacks' ids too (``/``, ``+``, ``=``, quotes): every backend compares it as a value, never as query syntax.
    Whitespace is refused: in an id it is a pasting mistake far more often than a real id."""
    if not value or len(value) > MAX_SEARCH_ID:
        return f"a correlation id has 1 to {MAX_SEARCH_ID} characters"
    if not value.isprintable() or any(c.isspace() for c in value):
        return "a correlation id has no spaces or control characters"
    return None


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


class Found(list[dict[str, Any]]):
    """The lines a search found, in order. ``complete`` is False when more lines matched than the query's
    ``limit`` (or than a backend reads for one search) and only the first ones are here: ``corrtrace search``
    says so instead of showing a cut flow as if it were whole."""

    complete: bool = True

    @classmethod
    def first(cls, events: list[dict[str, Any]], limit: int, *, more: bool = False) -> Found:
        """The first ``limit`` of ``events`` (a backend asks for one more than ``limit`` to know there are
        more; ``more``: it knows otherwise, or stopped reading early)."""
        found = cls(events[:limit])
        found.complete = not more and len(events) <= limit
        return found


@dataclass
class SinkStats:
    delivered: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    requests: int = 0
    failures: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CallLimits:
    """What one request of a sink holds: the pipeline cuts a backlog into batches of whole, full requests.

    A record counts ``len(record.raw) + item_overhead`` bytes (CloudWatch adds 26 per event)."""

    max_bytes: int
    max_items: int
    item_overhead: int = 0


class Sink(Protocol):
    """What the pipeline and the handler call on a sink; collector/README.md, "Sinks", says what each does.

    ``idempotent`` sinks (Elasticsearch, embedded) are delivered first; CloudWatch, which cannot de-duplicate,
    last, so a crash repeats as little as possible there. ``call_limits`` (None: no per-request limit binds)
    lets the pipeline fill the sink's requests; ``dead_letters`` is where the sink writes what it refuses
    (None: it refuses nothing). ``max_in_flight``: how many batches the pipeline may deliver to it at once
    (1 for a sink that needs them in order).
    """

    name: str
    idempotent: bool
    stats: SinkStats
    call_limits: CallLimits | None
    dead_letters: DeadLetters | None
    max_in_flight: int

    def deliver(self, records: Sequence[Record], stop: threading.Event | None = None) -> None:
        """Return once every record is stored or dead-lettered; raise ``Stopped`` when ``stop`` is set first."""

    def committed(self, offsets: dict[str, int]) -> None:
        """The checkpoint now holds ``offsets`` (source identity -> end offset): lines before them are never
        delivered again, so state kept to recognise a resend (CloudWatch's landed journal) can be dropped."""

    def make_searchable(self) -> None:
        """Make what was delivered searchable now (``collect --once`` calls it before it exits, so a search
        right after finds every stored line); a no-op where a stored line already is."""

    def close(self) -> None: ...
