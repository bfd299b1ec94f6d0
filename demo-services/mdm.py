"""Master data management (from the talk): check that the services' own stores agree, and clean up.

Every request leaves one record per service it touched, keyed by its correlation ID: a reservation
(catalog), an order (checkout), a charge (payment), a shipment (shipping). The check reads them all and
reports each disagreement with the correlation ID; ``repair`` asks the transaction manager to roll the
request back (registering, on the owning services' behalf, the participants that still hold state, so a
request the manager never heard of can be cleaned up too). It also runs as a scheduled handler.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from corrtrace.demo import wiring
from corrtrace.demo.settings import MESH_ENV, Mesh
from corrtrace.demo.stores import Snapshot, snapshot

from corrtrace.context import bind_correlation_id

log = logging.getLogger("demo.mdm")
ACTIVE_RESERVATION = {"reserved", "committed"}
ACTIVE_CHARGE = {"charged", "captured"}
IN_FLIGHT = {"staged", "placed"}


@dataclass(frozen=True)
class Inconsistency:
    correlation_id: str
    kind: str
    detail: str
    services: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "services": list(self.services)}


def _newest(snap: Snapshot, cid: str) -> float:
    stamps = [
        float(table[cid]["created"])
        for table in (snap.reservations, snap.orders, snap.charges, snap.shipments)
        if cid in table
    ]
    return max(stamps) if stamps else 0.0


def check(snap: Snapshot, *, grace_seconds: float = 0.0, now: float | None = None) -> list[Inconsistency]:
    """Every disagreement between the stores; requests younger than ``grace_seconds`` are still in flight."""
    now = time.time() if now is None else now
    found: list[Inconsistency] = []
    for cid in sorted(snap.correlation_ids()):
        if now - _newest(snap, cid) < grace_seconds:
            continue
        r, o, c, s = (snap.reservations.get(cid), snap.orders.get(cid), snap.charges.get(cid), snap.shipments.get(cid))
        r_live = r is not None and r["status"] in ACTIVE_RESERVATION
        c_live = c is not None and c["status"] in ACTIVE_CHARGE

        def add(kind: str, detail: str, *services: str, cid: str = cid) -> None:
            found.append(Inconsistency(cid, kind, detail, services))

        status = None if o is None else o["status"]
        if status is None or status == "rolled_back":
            label = "no order" if status is None else "order rolled back"
            if r_live and r is not None:
                add("orphan-reservation", f"{label}, but catalog still holds {r['qty']} x {r['sku']}", "catalog")
            if c_live and c is not None:
                add("orphan-charge", f"{label}, but payment holds a {c['status']} charge", "payment")
            if s is not None:
                add("orphan-shipment", f"{label}, but shipping shipped it", "shipping")
        elif status == "committed":
            if r is None or r["status"] != "committed":
                add("reservation-not-committed", f"order committed, reservation {r and r['status']}", "catalog")
            if c is None or c["status"] != "captured":
                add("charge-not-captured", f"order committed, charge {c and c['status']}", "payment")
            if s is None:
                add("committed-not-shipped", "order committed, no shipment", "shipping")
        elif status in IN_FLIGHT:
            add("stuck-order", f"order still {status} after the grace period", "checkout")
    return found


def _participants(snap: Snapshot, cid: str) -> list[str]:
    """The services that still hold state for ``cid`` (the ones a rollback must reach)."""
    held = []
    if cid in snap.reservations and snap.reservations[cid]["status"] in ACTIVE_RESERVATION:
        held.append("catalog")
    if cid in snap.orders and snap.orders[cid]["status"] != "rolled_back":
        held.append("checkout")
    if cid in snap.charges and snap.charges[cid]["status"] in ACTIVE_CHARGE:
        held.append("payment")
    return held


@dataclass
class RepairResult:
    correlation_id: str
    requested: bool
    detail: str


def repair(mesh: Mesh, secret: str, found: list[Inconsistency], snap: Snapshot) -> list[RepairResult]:
    """Ask the manager to roll back each inconsistent request, registering its holders first."""
    from corrtrace.txmanager.client import TxManagerError

    manager = wiring.manager_client(mesh.url("txmanager"), secret)
    results = []
    for cid in sorted({i.correlation_id for i in found}):
        kinds = ",".join(sorted({i.kind for i in found if i.correlation_id == cid}))
        holders = _participants(snap, cid)
        with bind_correlation_id(cid):
            try:
                for service in holders:
                    base = mesh.url(service)
                    manager.register(cid, service, f"{base}/corrtrace/rollback/{cid}", f"{base}/corrtrace/commit/{cid}")
                manager.rollback(cid, reason=f"mdm: {kinds}", source="mdm")
            except TxManagerError as exc:
                log.warning("mdm could not repair: %s", exc, extra={"event.action": "mdm-repair"})
                results.append(RepairResult(cid, False, str(exc)))
                continue
            log.info(
                "mdm asked for a rollback (%s)",
                kinds,
                extra={"event.action": "mdm-repair", "labels.participants": ",".join(holders)},
            )
            results.append(RepairResult(cid, True, f"rollback of {', '.join(holders) or 'nothing held'}"))
    manager.close()
    return results


def run_check(
    mesh: Mesh, *, do_repair: bool = False, grace_seconds: float = 0.0, wait_seconds: float = 20.0
) -> dict[str, Any]:
    """Check, optionally repair and re-check until the repaired requests are clean (or ``wait_seconds``)."""
    snap = snapshot(mesh)
    found = check(snap, grace_seconds=grace_seconds)
    for item in found:
        with bind_correlation_id(item.correlation_id):
            log.warning(
                "mdm inconsistency %s: %s",
                item.kind,
                item.detail,
                extra={"event.action": "mdm-inconsistency", "labels.kind": item.kind},
            )
    report: dict[str, Any] = {"checked": len(snap.correlation_ids()), "inconsistencies": [i.as_dict() for i in found]}
    if do_repair and found:
        repaired = repair(mesh, mesh.secret(), found, snap)
        report["repairs"] = [asdict(r) for r in repaired]
        targets = {r.correlation_id for r in repaired if r.requested}
        deadline = time.monotonic() + wait_seconds
        remaining = found
        while time.monotonic() < deadline:
            remaining = [i for i in check(snapshot(mesh)) if i.correlation_id in targets]
            if not remaining:
                break
            time.sleep(0.1)
        report["after_repair"] = [i.as_dict() for i in check(snapshot(mesh), grace_seconds=grace_seconds)]
    return report


def scheduled_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The check as a Lambda on a schedule (an EventBridge "Scheduled Event", e.g. hourly, per the talk).

    ``CORRTRACE_DEMO_MESH`` locates the stores; ``CORRTRACE_DEMO_MDM_REPAIR=1`` also repairs;
    ``CORRTRACE_DEMO_MDM_GRACE`` (seconds, default 60) leaves requests in flight alone.
    """
    mesh = Mesh.load(os.environ.get(MESH_ENV))
    do_repair = os.environ.get("CORRTRACE_DEMO_MDM_REPAIR", "0").lower() in {"1", "true", "yes", "on"}
    grace = float(os.environ.get("CORRTRACE_DEMO_MDM_GRACE", "60"))
    with bind_correlation_id(str(event.get("id") or "") or None):
        report = run_check(mesh, do_repair=do_repair, grace_seconds=grace)
        log.info(
            "mdm scheduled check: %d inconsistencies",
            len(report["inconsistencies"]),
            extra={"event.action": "mdm-check", "labels.inconsistencies": len(report["inconsistencies"])},
        )
    return report
