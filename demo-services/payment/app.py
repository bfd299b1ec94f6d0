"""Payment (FastAPI): charges a card; a commit captures the charge, a rollback refunds it."""

from __future__ import annotations

from typing import Any

from corrtrace.demo import wiring
from corrtrace.demo.payment import gateway
from corrtrace.demo.payment.store import PaymentStore
from corrtrace.demo.runtime import UNAVAILABLE_BODY, ManagerUnavailable, Runtime
from fastapi import FastAPI
from fastapi.responses import JSONResponse


def build(rt: Runtime) -> Any:
    store = PaymentStore(rt.mesh.db_path("payment"))
    slow_ms = rt.mesh.demo().slow_ms
    log = rt.log
    app = FastAPI(title="payment")

    @app.post("/charges")
    def charge(body: dict[str, Any]) -> JSONResponse:
        cid = wiring.current_id()
        order_id, amount = str(body["order_id"]), int(body["amount_cents"])
        try:
            auth = gateway.charge(str(body["card"]), amount, slow_ms)
        except gateway.Declined as exc:
            store.record(cid, order_id, amount, "declined")
            log.warning(
                "payment declined for %s: %s",
                order_id,
                exc,
                extra={
                    "event.action": "charge",
                    "event.outcome": "failure",
                    "labels.order_id": order_id,
                    "labels.reason": "declined",
                },
            )
            return JSONResponse({"status": "declined", "detail": str(exc)}, status_code=402)
        rt.register(cid)
        status = store.record(cid, order_id, amount, "charged")
        log.info(
            "charged %d cents for %s",
            amount,
            order_id,
            extra={"event.action": "charge", "event.outcome": "success", "labels.order_id": order_id},
        )
        return JSONResponse({"status": status, "auth": auth}, status_code=201)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"service": "payment", "ok": True}

    @app.exception_handler(ManagerUnavailable)
    def unavailable(request: Any, exc: ManagerUnavailable) -> JSONResponse:
        return JSONResponse(UNAVAILABLE_BODY, status_code=503)

    def on_rollback(cid: str, payload: dict[str, Any]) -> dict[str, Any]:
        applied = store.refund(cid)
        log.info(
            "charge %s",
            "refunded" if applied else "not refundable (none, declined or refunded)",
            extra={"event.action": "rollback-applied", "labels.applied": applied},
        )
        return {"applied": applied}

    def on_commit(cid: str, payload: dict[str, Any]) -> dict[str, Any]:
        applied = store.capture(cid)
        if applied:
            row = store.query("SELECT order_id, amount_cents FROM charges WHERE correlation_id = ?", (cid,))[0]
            rt.publish("payment-captured", cid, str(row["order_id"]), amount_cents=row["amount_cents"])
        return {"applied": applied}

    app.include_router(wiring.participant_router(rt.secret, on_rollback, on_commit))
    return wiring.asgi(app, rt.service_map)
