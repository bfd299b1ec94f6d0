"""Checkout (FastAPI): stages the order in DynamoDB, marks it placed once paid; the manager's commit (after
shipping) makes it final: the talk's staged commit."""

from __future__ import annotations

from typing import Any

from corrtrace.demo import wiring
from corrtrace.demo.checkout.store import OrdersTable
from corrtrace.demo.runtime import UNAVAILABLE_BODY, ManagerUnavailable, Runtime
from fastapi import FastAPI
from fastapi.responses import JSONResponse


def build(rt: Runtime) -> Any:
    orders = OrdersTable(rt.aws("dynamodb"), rt.mesh.orders_table)
    log = rt.log
    app = FastAPI(title="checkout")

    @app.post("/orders")
    def create(body: dict[str, Any]) -> JSONResponse:
        cid = wiring.current_id()
        rt.register(cid)
        created = orders.stage(cid, body)
        log.info(
            "order %s staged",
            body["order_id"],
            extra={"event.action": "stage-order", "event.outcome": "success", "labels.order_id": body["order_id"]},
        )
        return JSONResponse({"status": "staged", "created": created}, status_code=201)

    @app.post("/orders/paid")
    def paid(body: dict[str, Any]) -> JSONResponse:
        """Payment is authorised: mark the order placed; its stream record is what shipping ships."""
        cid = wiring.current_id()
        placed = orders.place(cid)
        log.info(
            "order %s placed",
            body.get("order_id"),
            extra={"event.action": "place-order", "event.outcome": "success" if placed else "unknown"},
        )
        return JSONResponse({"status": "placed" if placed else "unchanged"}, status_code=200 if placed else 409)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"service": "checkout", "ok": True}

    @app.exception_handler(ManagerUnavailable)
    def unavailable(request: Any, exc: ManagerUnavailable) -> JSONResponse:
        return JSONResponse(UNAVAILABLE_BODY, status_code=503)

    def on_rollback(cid: str, payload: dict[str, Any]) -> dict[str, Any]:
        applied = orders.rollback(cid)
        log.info(
            "order %s",
            "cancelled" if applied else "already cancelled or unknown",
            extra={"event.action": "rollback-applied", "labels.applied": applied},
        )
        return {"applied": applied}

    def on_commit(cid: str, payload: dict[str, Any]) -> dict[str, Any]:
        applied = orders.commit(cid)
        if applied:
            order = orders.get(cid) or {}
            rt.publish("order-committed", cid, str(order.get("order_id", "")))
        return {"applied": applied}

    app.include_router(wiring.participant_router(rt.secret, on_rollback, on_commit))
    return wiring.asgi(app, rt.service_map)
