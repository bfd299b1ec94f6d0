"""Read every service's own store at once (read-only): the MDM check and the runner's verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corrtrace.demo import aws
from corrtrace.demo.catalog.store import read_reservations, read_stock
from corrtrace.demo.checkout.store import read_orders
from corrtrace.demo.payment.store import read_charges
from corrtrace.demo.settings import Mesh
from corrtrace.demo.shipping.store import read_shipments


@dataclass
class Snapshot:
    reservations: dict[str, dict[str, Any]]
    orders: dict[str, dict[str, Any]]
    charges: dict[str, dict[str, Any]]
    shipments: dict[str, dict[str, Any]]
    stock: dict[str, dict[str, Any]]

    def correlation_ids(self) -> set[str]:
        return {*self.reservations, *self.orders, *self.charges, *self.shipments}


def _maybe(path: Any, reader: Any) -> dict[str, dict[str, Any]]:
    return reader(str(path)) if path.exists() else {}


def snapshot(mesh: Mesh) -> Snapshot:
    return Snapshot(
        reservations=_maybe(mesh.db_path("catalog"), read_reservations),
        orders=read_orders(aws.client(mesh, "dynamodb"), mesh.orders_table),
        charges=_maybe(mesh.db_path("payment"), read_charges),
        shipments=_maybe(mesh.db_path("shipping"), read_shipments),
        stock=_maybe(mesh.db_path("catalog"), read_stock),
    )
