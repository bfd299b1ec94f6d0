"""The done-when test: the whole demo (its own moto, the manager, five services + aggregation, the pipeline)
with 200 orders and a fixed seed against the real Elasticsearch node, the manager stopped for 3 s while orders
flow (--manager-outage); then an orphan is injected, found and repaired by ``corrtrace mdm check``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from corrtrace.collector import search_events
from corrtrace.demo.runner import Demo
from corrtrace.demo.settings import DemoSettings
from corrtrace.demo.stores import snapshot

from corrtrace.cli import main
from corrtrace.ids import new_uuid7
from tests.fixtures import AWS_EVENTS

SEED = 20261127
# the services each kind of request touches (its lines must all be found by search)
TOUCHED = {
    "none": {"ui", "catalog", "checkout", "payment", "shipping", "txmanager", "aggregation"},
    "decline": {"ui", "catalog", "checkout", "payment", "trigger", "txmanager"},
    "poison": {"ui", "catalog", "checkout", "payment", "shipping", "txmanager"},
    "outage": {"ui", "trigger", "txmanager"},  # cut short while the manager was down: written down, rolled back
}


def _kind(outcome: Any) -> str:
    return "outage" if outcome.outage else str(outcome.plan.fault)


def _services(events: list[dict[str, Any]]) -> set[str]:
    return {str((e.get("service") or {}).get("name")) for e in events}


def test_demo_200_orders_on_elasticsearch_rolls_back_every_failure(
    es_url: str, es: Any, index_prefix: str, tmp_path: Path, monkeypatch: Any
) -> None:
    settings = DemoSettings(
        orders=200,
        seed=SEED,
        decline_rate=0.10,
        poison_rate=0.03,
        slow_rate=0.05,
        manager_outage_seconds=3,
        workdir=str(tmp_path / "demo"),
        elasticsearch_url=es_url,
        index_prefix=index_prefix,
        settle_timeout_seconds=240,  # without progress (settling returns as soon as all is final): a slow host
    )
    started = time.monotonic()
    with Demo(settings) as demo:
        assert demo.mesh is not None
        assert demo.mesh.moto_url != "http://127.0.0.1:5000"  # its own moto
        report = demo.run()
        outcomes = report.outcomes
        by_fault = {k: [o for o in outcomes if _kind(o) == k] for k in TOUCHED}
        assert report.expected_failures["decline"] >= 10 and len(by_fault["decline"]) >= 5
        assert report.expected_failures["poison"] >= 3 and len(by_fault["poison"]) >= 2
        assert report.expected_failures["slow"] >= 3
        assert not report.unsettled

        # the outage: the manager was stopped while orders flowed, the orders it cut short were written down as
        # failures meanwhile, and (below) each of them was still rolled back exactly once
        outage = report.manager_outage
        assert outage["error"] is None and outage["down_for"] >= 3
        assert outage["orders_failed"] == len(by_fault["outage"]) == report.expected_failures["outage"] >= 1
        assert outage["failures_reported_while_down"] >= 1

        # every failure rolled back exactly once, checked in the services' own databases
        v = report.verification
        assert v.passed, v.problems[:10]
        assert v.failed_orders == sum(len(by_fault[k]) for k in ("decline", "poison", "outage")) == report.failed
        assert v.rolled_back_verified == v.failed_orders
        assert report.ok == len(by_fault["none"])
        snap = snapshot(demo.mesh)
        failed_ids = {o.correlation_id for o in outcomes if o.expected_failure}
        released = {c for c, r in snap.reservations.items() if r["status"] == "released"}
        assert released == failed_ids & set(snap.reservations)
        assert {o.correlation_id for o in by_fault["decline"] + by_fault["poison"]} <= released
        assert all(snap.reservations[c]["rollbacks"] == 1 for c in released)
        assert all(int(snap.orders[c]["rollbacks"]) == 1 for c in failed_ids & set(snap.orders))
        refunded = {c for c, ch in snap.charges.items() if ch["status"] == "refunded"}
        assert {o.correlation_id for o in by_fault["poison"]} <= refunded <= failed_ids
        # the manager's view agrees; the poison requests were asked to roll back more than once (two alerts fire
        # for them) and still every participant applied it once
        from corrtrace.txmanager import TxManagerClient

        with TxManagerClient(demo.mesh.url("txmanager"), demo.mesh.secret()) as manager:
            states = {o.correlation_id: manager.status(o.correlation_id) for o in outcomes}
        assert {c for c, t in states.items() if t["action"] == "rollback"} == failed_ids
        assert all(t["state"] == "rolled_back" for c, t in states.items() if c in failed_ids)
        assert all(t["action"] == "commit" for c, t in states.items() if c not in failed_ids)
        assert any(states[o.correlation_id]["triggers"] > 1 for o in by_fault["poison"])
        assert all(len(states[o.correlation_id]["participants"]) == 3 for o in by_fault["poison"])
        assert not set(snap.shipments) & failed_ids
        assert len(snap.shipments) == report.ok

        # each rollback names its path: business failures and outage cuts came from failure records, the poison
        # requests from the code-error alarm or the stream-jam alert (whichever reached the manager first)
        paths = {r["correlation_id"]: r["path"] for r in report.rollbacks}
        assert set(paths) == failed_ids
        assert all(paths[o.correlation_id] == "failure record" for o in by_fault["decline"] + by_fault["outage"])
        assert all(paths[o.correlation_id] in ("code-error alarm", "stream-jam alert") for o in by_fault["poison"])

        # the expected alerts fired, and the rollback alerts named exactly the poison requests
        fired = {str(a.get("alert") or a.get("alarm_name")) for a in report.alerts}
        assert {"code-errors", "stream-jam", "payment-latency", "payment-declines"} <= fired
        rollback_ids = {
            c for a in report.alerts if a.get("alert") in ("code-errors", "stream-jam") for c in a["correlation_ids"]
        }
        assert rollback_ids == {o.correlation_id for o in by_fault["poison"]}
        assert len(report.shipping["skipped"]) == len(by_fault["poison"])

        # every request's lines are found by search in every service it touched
        es.indices.refresh(index=f"{index_prefix}-*")
        for outcome in outcomes:
            events = search_events(outcome.correlation_id, backend=es, index_prefix=index_prefix)
            missing = TOUCHED[_kind(outcome)] - _services(events)
            assert not missing, f"{outcome.plan.order_id} ({_kind(outcome)}): no lines from {missing}"
        assert report.flow and _services(report.flow) >= TOUCHED["poison"]

        # MDM finds nothing after the run (requests the outage stopped before any store are not in any store)
        touched_a_store = snap.correlation_ids()
        assert report.mdm["inconsistencies"] == [] and report.mdm["checked"] == len(touched_a_store)
        assert len(touched_a_store) >= 200 - len(by_fault["outage"])
        assert report.passed
        assert report.aggregation == {
            "order-committed": report.ok,
            "payment-captured": report.ok,
            "shipment-created": report.ok,
        }
        assert report.dashboards

        _inject_orphans_then_repair(demo, tmp_path / "demo")
        _scheduled_check_repairs(demo, tmp_path / "demo", monkeypatch)
    print(f"\ndemo with 200 orders on Elasticsearch: {time.monotonic() - started:.1f} s, phases {report.phases}")


def _inject_orphans_then_repair(demo: Demo, workdir: Path) -> None:
    """An orphan reservation (the request died after catalog) and an orphan charge the manager never heard of
    (written straight into payment's database, as if payment crashed before registering)."""
    mesh = demo.mesh
    assert mesh is not None
    orphan_reservation, orphan_charge = new_uuid7(), new_uuid7()
    before = snapshot(mesh).stock["sku-kiwi"]["qty"]
    response = httpx.post(
        f"{mesh.url('catalog')}/reservations",
        json={"order_id": "orphan-1", "sku": "sku-kiwi", "qty": 3},
        headers={"X-Correlation-ID": orphan_reservation},
    )
    assert response.status_code == 201
    with sqlite3.connect(mesh.db_path("payment")) as db:
        db.execute(
            "INSERT INTO charges (correlation_id, order_id, amount_cents, status, created) VALUES (?,?,?,?,?)",
            (orphan_charge, "orphan-2", 1234, "charged", time.time()),
        )
    runner = CliRunner()
    found = runner.invoke(main, ["mdm", "check", "--mesh", str(workdir), "--json"])
    assert found.exit_code == 1, found.output
    import json

    report = json.loads(found.stdout)
    kinds = {(i["correlation_id"], i["kind"]) for i in report["inconsistencies"]}
    assert kinds == {(orphan_reservation, "orphan-reservation"), (orphan_charge, "orphan-charge")}

    repaired = runner.invoke(main, ["mdm", "check", "--mesh", str(workdir), "--repair", "--json"])
    assert repaired.exit_code == 0, repaired.output
    result = json.loads(repaired.stdout)
    assert result["after_repair"] == []
    assert all(r["requested"] for r in result["repairs"])
    snap = snapshot(mesh)
    assert (snap.reservations[orphan_reservation]["status"], snap.reservations[orphan_reservation]["rollbacks"]) == (
        "released",
        1,
    )
    assert snap.stock["sku-kiwi"]["qty"] == before
    assert (snap.charges[orphan_charge]["status"], snap.charges[orphan_charge]["rollbacks"]) == ("refunded", 1)
    clean = runner.invoke(main, ["mdm", "check", "--mesh", str(workdir)])
    assert clean.exit_code == 0 and "0 inconsistencies" in clean.output


def _scheduled_check_repairs(demo: Demo, workdir: Path, monkeypatch: Any) -> None:
    """The MDM check as a scheduled Lambda (EventBridge "Scheduled Event"): finds and repairs a new orphan."""
    import json

    from corrtrace.demo.mdm import scheduled_handler

    mesh = demo.mesh
    assert mesh is not None
    orphan = new_uuid7()
    response = httpx.post(
        f"{mesh.url('catalog')}/reservations",
        json={"order_id": "orphan-3", "sku": "sku-fig", "qty": 1},
        headers={"X-Correlation-ID": orphan},
    )
    assert response.status_code == 201
    event = json.loads((AWS_EVENTS / "eventBridgeEvent.json").read_text())
    event.update({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
    monkeypatch.setenv("CORRTRACE_DEMO_MESH", str(workdir / "mesh.json"))
    monkeypatch.setenv("CORRTRACE_DEMO_MDM_GRACE", "3600")
    assert scheduled_handler(event, None)["inconsistencies"] == []  # still "in flight" within the grace period
    monkeypatch.setenv("CORRTRACE_DEMO_MDM_GRACE", "0")
    monkeypatch.setenv("CORRTRACE_DEMO_MDM_REPAIR", "1")
    result = scheduled_handler(event, None)
    assert [(i["correlation_id"], i["kind"]) for i in result["inconsistencies"]] == [(orphan, "orphan-reservation")]
    assert result["after_repair"] == []
    assert snapshot(mesh).reservations[orphan]["status"] == "released"
