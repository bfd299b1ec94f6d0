"""Payment's own database: one charge per request. Rollback refunds a charge once; commit captures it."""

from __future__ import annotations

import time

from corrtrace.demo.sqlite_store import SqliteStore, read_rows


class PaymentStore(SqliteStore):
    schema = """
    CREATE TABLE IF NOT EXISTS charges (
        correlation_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL, created REAL NOT NULL, rollbacks INTEGER NOT NULL DEFAULT 0,
        rollback_calls INTEGER NOT NULL DEFAULT 0, commits INTEGER NOT NULL DEFAULT 0);
    """

    def record(self, correlation_id: str, order_id: str, amount_cents: int, status: str) -> str:
        """Store the gateway's answer (``charged`` or ``declined``); a repeat returns the first answer."""
        with self.transaction() as cur:
            row = cur.execute("SELECT status FROM charges WHERE correlation_id = ?", (correlation_id,)).fetchone()
            if row is not None:
                return str(row["status"])
            cur.execute(
                "INSERT INTO charges (correlation_id, order_id, amount_cents, status, created) VALUES (?, ?, ?, ?, ?)",
                (correlation_id, order_id, amount_cents, status, time.time()),
            )
            return status

    def refund(self, correlation_id: str) -> bool:
        with self.transaction() as cur:
            cur.execute(
                "UPDATE charges SET rollback_calls = rollback_calls + 1 WHERE correlation_id = ?", (correlation_id,)
            )
            cur.execute(
                "UPDATE charges SET status = 'refunded', rollbacks = rollbacks + 1 "
                "WHERE correlation_id = ? AND status IN ('charged', 'captured')",
                (correlation_id,),
            )
            return cur.rowcount == 1

    def capture(self, correlation_id: str) -> bool:
        with self.transaction() as cur:
            cur.execute(
                "UPDATE charges SET status = 'captured', commits = commits + 1 "
                "WHERE correlation_id = ? AND status = 'charged'",
                (correlation_id,),
            )
            return cur.rowcount == 1


def read_charges(path: str) -> dict[str, dict[str, object]]:
    return {str(r["correlation_id"]): r for r in read_rows(path, "SELECT * FROM charges")}
