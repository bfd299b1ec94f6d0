"""Catalog (Flask, WSGI): reserves stock for an order; releases it on rollback, confirms it on commit."""

from __future__ import annotations

from typing import Any

from corrtrace.demo import wiring
from corrtrace.demo.catalog.store import CatalogStore, OutOfStock
from corrtrace.demo.faults import SKUS
from corrtrace.demo.runtime import UNAVAILABLE_BODY, ManagerUnavailable, Runtime
from flask import Flask, jsonify, request


def build(rt: Runtime) -> Any:
    store = CatalogStore(rt.mesh.db_path("catalog"))
    store.seed_stock(SKUS, rt.mesh.demo().stock_per_sku)
    log = rt.log
    app = Flask("catalog")

    @app.post("/reservations")
    def reserve() -> Any:
        body = request.get_json(force=True)
        cid = wiring.current_id()
        rt.register(cid)
        try:
            status = store.reserve(cid, str(body["order_id"]), str(body["sku"]), int(body["qty"]))
        except OutOfStock as exc:
            log.warning("reservation refused: %s", exc, extra={"event.action": "reserve", "event.outcome": "failure"})
            return jsonify({"error": "out-of-stock", "detail": str(exc)}), 409
        log.info(
            "reserved %s x %s for %s",
            body["qty"],
            body["sku"],
            body["order_id"],
            extra={"event.action": "reserve", "event.outcome": "success", "labels.order_id": body["order_id"]},
        )
        return jsonify({"status": status}), 201

    @app.errorhandler(ManagerUnavailable)
    def unavailable(exc: ManagerUnavailable) -> Any:
        return jsonify(UNAVAILABLE_BODY), 503

    @app.get("/stock")
    def stock() -> Any:
        return jsonify(store.query("SELECT sku, qty, initial FROM stock"))

    @app.get("/health")
    def health() -> Any:
        return jsonify({"service": "catalog", "ok": True})

    def on_rollback(cid: str, payload: dict[str, Any]) -> dict[str, Any]:
        applied = store.release(cid)
        log.info(
            "reservation %s",
            "released" if applied else "already released or unknown",
            extra={"event.action": "rollback-applied", "labels.applied": applied},
        )
        return {"applied": applied}

    def on_commit(cid: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"applied": store.commit(cid)}

    app.register_blueprint(wiring.participant_blueprint(rt.secret, on_rollback, on_commit))
    app.wsgi_app = wiring.wsgi(app.wsgi_app, rt.service_map)  # type: ignore[method-assign]
    return app
