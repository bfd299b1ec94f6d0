"""Catalog's own database: stock per SKU and one reservation per request (keyed by correlation ID).

Rollback and commit are idempotent: a reservation is released at most once however often the manager asks,
and ``rollbacks`` counts how often a release was applied (the runner checks it is exactly 1 for a failure).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from corrtrace.demo.sqlite_store import SqliteStore, read_rows


class OutOfStock(Exception):
    """Not enough stock for the reservation (a business failure, answered with 409)."""


class CatalogStore(SqliteStore):
    schema = """
    CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, initial INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS reservations (
        correlation_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
        status TEXT NOT NULL, created REAL NOT NULL, rollbacks INTEGER NOT NULL DEFAULT 0,
        rollback_calls INTEGER NOT NULL DEFAULT 0, commits INTEGER NOT NULL DEFAULT 0);
    """

    def seed_stock(self, skus: Iterable[str], qty: int) -> None:
        with self.transaction() as cur:
            for sku in skus:
                cur.execute("INSERT OR IGNORE INTO stock (sku, qty, initial) VALUES (?, ?, ?)", (sku, qty, qty))

    def reserve(self, correlation_id: str, order_id: str, sku: str, qty: int) -> str:
        """Reserve ``qty`` of ``sku``; a repeated call for the same request returns the first result."""
        with self.transaction() as cur:
            row = cur.execute("SELECT status FROM reservations WHERE correlation_id = ?", (correlation_id,)).fetchone()
            if row is not None:
                return str(row["status"])
            have = cur.execute("SELECT qty FROM stock WHERE sku = ?", (sku,)).fetchone()
            if have is None or have["qty"] < qty:
                raise OutOfStock(f"{sku}: {0 if have is None else have['qty']} left, {qty} wanted")
            cur.execute("UPDATE stock SET qty = qty - ? WHERE sku = ?", (qty, sku))
            cur.execute(
                "INSERT INTO reservations (correlation_id, order_id, sku, qty, status, created) "
                "VALUES (?, ?, ?, ?, 'reserved', ?)",
                (correlation_id, order_id, sku, qty, time.time()),
            )
            return "reserved"

    def release(self, correlation_id: str) -> bool:
        """Undo a reservation (reserved or committed): stock goes back once. True when applied now."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE reservations SET rollback_calls = rollback_calls + 1 WHERE correlation_id = ?",
                (correlation_id,),
            )
            row = cur.execute(
                "SELECT sku, qty, status FROM reservations WHERE correlation_id = ?", (correlation_id,)
            ).fetchone()
            if row is None or row["status"] == "released":
                return False
            cur.execute("UPDATE stock SET qty = qty + ? WHERE sku = ?", (row["qty"], row["sku"]))
            cur.execute(
                "UPDATE reservations SET status = 'released', rollbacks = rollbacks + 1 WHERE correlation_id = ?",
                (correlation_id,),
            )
            return True

    def commit(self, correlation_id: str) -> bool:
        with self.transaction() as cur:
            cur.execute(
                "UPDATE reservations SET status = 'committed', commits = commits + 1 "
                "WHERE correlation_id = ? AND status = 'reserved'",
                (correlation_id,),
            )
            return cur.rowcount == 1


def read_reservations(path: str) -> dict[str, dict[str, object]]:
    return {str(r["correlation_id"]): r for r in read_rows(path, "SELECT * FROM reservations")}


def read_stock(path: str) -> dict[str, dict[str, object]]:
    return {str(r["sku"]): r for r in read_rows(path, "SELECT * FROM stock")}
