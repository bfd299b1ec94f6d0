"""Shipping's own database: one shipment per committed order (idempotent: stream records repeat)."""

from __future__ import annotations

import time

from corrtrace.demo.sqlite_store import SqliteStore, read_rows


class ShippingStore(SqliteStore):
    schema = """
    CREATE TABLE IF NOT EXISTS shipments (
        correlation_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, label TEXT NOT NULL, created REAL NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 1);
    """

    def ship(self, correlation_id: str, order_id: str, label: str) -> bool:
        """Record a shipment; True when new. A redelivered stream record only bumps ``deliveries``."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO shipments (correlation_id, order_id, label, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(correlation_id) DO UPDATE SET deliveries = deliveries + 1",
                (correlation_id, order_id, label, time.time()),
            )
            row = cur.execute("SELECT deliveries FROM shipments WHERE correlation_id = ?", (correlation_id,)).fetchone()
            return bool(row["deliveries"] == 1)


def read_shipments(path: str) -> dict[str, dict[str, object]]:
    return {str(r["correlation_id"]): r for r in read_rows(path, "SELECT * FROM shipments")}
