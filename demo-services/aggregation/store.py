"""The aggregation service's store: counts of business events per minute and kind (for reporting)."""

from __future__ import annotations

from corrtrace.demo.sqlite_store import SqliteStore


class CountsStore(SqliteStore):
    schema = """
    CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS counts (minute TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
                                       PRIMARY KEY (minute, kind));
    """

    def add(self, message_id: str, minute: str, kind: str) -> bool:
        """Count one event; a redelivered message (same id) is counted once."""
        with self.transaction() as cur:
            cur.execute("INSERT OR IGNORE INTO seen (message_id) VALUES (?)", (message_id,))
            if cur.rowcount != 1:
                return False
            cur.execute(
                "INSERT INTO counts (minute, kind, n) VALUES (?, ?, 1) "
                "ON CONFLICT(minute, kind) DO UPDATE SET n = n + 1",
                (minute, kind),
            )
            return True
