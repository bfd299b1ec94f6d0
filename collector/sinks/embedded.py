"""The default sink: an SQLite file indexed by correlation id and time, so search works with nothing installed."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from corrtrace.collector.checkpoint import StateError
from corrtrace.collector.record import Record
from corrtrace.collector.retry import Backoff, DeadLetters
from corrtrace.collector.sinks.base import CallLimits, Found, SearchQuery, SinkStats

log = logging.getLogger("corrtrace.collector.embedded")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    correlation_id TEXT,
    service TEXT,
    level TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_cid_ts ON events (correlation_id, ts, seq);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """A broken file, as opposed to a locked, busy or full one (which a retry fixes) or a bad value."""
    text = str(exc).lower()
    return type(exc) is sqlite3.DatabaseError or "malformed" in text or "not a database" in text


def store_file(path: str | os.PathLike[str]) -> Path:
    """The SQLite file of a store at ``path``: the file itself, or ``events.sqlite3`` in the directory."""
    target = Path(path)
    return target if target.suffix in (".sqlite3", ".sqlite", ".db") else target / "events.sqlite3"


def _damaged_store(target: Path, exc: Exception) -> StateError:
    return StateError(
        f"{target}: the embedded store is damaged ({exc}); move it away (its lines are still in the "
        "source files: delete the checkpoint.json beside it to ship them again) or recover what it "
        f"holds with: sqlite3 {target} .recover"
    )


class EmbeddedStore:
    """Events in ``<path>`` (a file, or a directory that gets ``events.sqlite3``); ``INSERT OR IGNORE`` on the id
    makes redelivery idempotent, like ``create`` in Elasticsearch."""

    name = "embedded"
    idempotent = True
    call_limits: CallLimits | None = None
    max_in_flight = 1  # one SQLite writer
    dead_letters: DeadLetters | None = None  # refuses nothing: a record it cannot encode is the pipeline's poison

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        backoff: Backoff | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        target = store_file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.path = target
        self.stats = SinkStats()
        self.backoff_proto = backoff or Backoff()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(target), check_same_thread=False, timeout=busy_timeout)
        backoff = self.backoff_proto.fresh()
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                break
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and not _damaged(exc):  # locked by another process
                    if backoff.attempt in (0, 3) or backoff.attempt % 10 == 0:
                        log.warning("embedded store %s unavailable (%s), retrying with backoff", target, exc)
                    backoff.wait(None)
                    continue
                self._db.close()
                raise _damaged_store(target, exc) from None

    def deliver(self, records: Sequence[Record], stop: threading.Event | None = None) -> None:
        """Insert every record; a locked, busy or full database is waited out with backoff, never fatal."""
        rows = [(r.doc_id, r.ts, r.correlation_id, r.service, r.level, r.raw.decode()) for r in records]
        backoff = self.backoff_proto.fresh()
        while True:
            try:
                inserted = self._insert(rows)
                break
            except sqlite3.DatabaseError as exc:
                if _damaged(exc):
                    raise _damaged_store(self.path, exc) from None
                if not isinstance(exc, sqlite3.OperationalError):
                    raise
                self.stats.failures += 1
                if backoff.attempt in (0, 3) or backoff.attempt % 10 == 0:
                    log.warning("embedded store %s unavailable (%s), retrying with backoff", self.path, exc)
                backoff.wait(stop)
        if backoff.attempt:
            log.warning("embedded store %s writable again", self.path)
        self.stats.requests += 1
        self.stats.delivered += inserted
        self.stats.duplicates += len(rows) - inserted

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        with self._lock:
            before = self._db.total_changes
            with self._db:
                self._db.executemany(
                    "INSERT OR IGNORE INTO events (id, ts, correlation_id, service, level, doc) VALUES (?,?,?,?,?,?)",
                    rows,
                )
            return int(self._db.total_changes - before)

    def search(self, query: SearchQuery) -> Found:
        sql = "SELECT ts, doc FROM events WHERE correlation_id = ?"
        args: list[Any] = [query.correlation_id]
        for clause, value in (("ts >= ?", query.since), ("ts <= ?", query.until), ("service = ?", query.service)):
            if value is not None:
                sql += f" AND {clause}"
                args.append(value)
        if query.level is not None:
            sql += " AND upper(level) = ?"
            args.append(query.level.upper())
        sql += " ORDER BY ts, seq LIMIT ?"
        args.append(query.limit + 1)  # one more tells whether there are more
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return Found.first([orjson.loads(doc) for _, doc in rows], query.limit)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    # -- retention --------------------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes the events occupy (pages in use; freed pages are reused, so the file stops growing here)."""
        with self._lock:
            pages, free, size = (
                self._db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size")
            )
        return int((pages - free) * size)

    def prune(self, days: int, *, dry_run: bool = False, now_ms: int | None = None) -> list[str]:
        """Remove events older than ``days`` days, then the oldest events until the store is under ``max_bytes``;
        returns what was removed, in words (also logged)."""
        removed: list[str] = []
        if days > 0:
            cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - days * 86_400_000
            n = self._delete("ts < ?", cutoff, dry_run)
            if n:
                removed.append(f"{n} events older than {days} days")
        if self.max_bytes is not None:
            over = 0
            while self.used_bytes() > self.max_bytes:
                with self._lock:
                    total = int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])
                if not total or dry_run:
                    break
                # the oldest tenth at a time, by time then arrival
                over += self._delete(
                    "seq IN (SELECT seq FROM events ORDER BY ts, seq LIMIT ?)", max(1, total // 10), dry_run
                )
            if over:
                removed.append(f"{over} oldest events to stay under {self.max_bytes / 2**20:.0f} MB")
        for what in removed:
            log.info("embedded store %s: %s %s", self.path, "would remove" if dry_run else "removed", what)
        return removed

    def _delete(self, where: str, arg: int, dry_run: bool) -> int:
        with self._lock:
            if dry_run:
                if where.startswith("seq IN"):
                    return 0
                return int(self._db.execute(f"SELECT count(*) FROM events WHERE {where}", (arg,)).fetchone()[0])
            with self._db:
                return self._db.execute(f"DELETE FROM events WHERE {where}", (arg,)).rowcount

    def committed(self, offsets: dict[str, int]) -> None:
        """Nothing to forget: a resend is recognised by its id."""

    def make_searchable(self) -> None:
        """Nothing to wait for: a committed row is searchable."""

    def close(self) -> None:
        with self._lock:
            self._db.close()
