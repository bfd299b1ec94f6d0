"""UI (FastAPI): takes an order and drives it through catalog, checkout and payment, then places it.

A business failure (payment declined) or a failed call asks the transaction manager to roll the request
back everywhere. On success the order is *placed*: shipping picks it up from checkout's stream and, once it
has shipped, asks the manager to commit (card payments work that way too: authorise now, capture at
shipment). The correlation ID bound by the middleware travels on every call.
"""

from __future__ import annotations

from typing import Any

import httpx
from corrtrace.demo import wiring
from corrtrace.demo.runtime import Runtime
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class Order(BaseModel):
    """What the ui accepts (bounded: it is the mesh's public entry point)."""

    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=100)
    amount_cents: int = Field(ge=1, le=10_000_000)
    card: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$")
    address: dict[str, str] = Field(max_length=8)


def build(rt: Runtime) -> Any:
    log = rt.log
    app = FastAPI(title="ui")
    mesh = rt.mesh

    def fail(cid: str, status: int, reason: str, order_id: str, detail: str) -> JSONResponse:
        from corrtrace.txmanager.client import TxManagerError

        log.warning(
            "order %s failed (%s): rolling back", order_id, reason,
            extra={"event.action": "place-order", "event.outcome": "failure", "labels.reason": reason,
                   "labels.order_id": order_id},
        )
        try:
            rt.manager.rollback(cid, reason=reason, source="ui")
        except TxManagerError:  # logged with its stack: the code-error alarm asks the manager again later
            log.exception("could not ask the manager to roll back order %s", order_id)
        return JSONResponse(
            {"status": "rolled_back", "reason": reason, "detail": detail, "correlation_id": cid}, status_code=status
        )

    @app.post("/orders")
    def place(body: Order) -> JSONResponse:
        cid = wiring.current_id()
        order = body.model_dump()
        order_id = body.order_id
        http = rt.http
        try:
            reserved = http.post(f"{mesh.url('catalog')}/reservations", json=order)
            if reserved.status_code == 409:
                return fail(cid, 409, "out-of-stock", order_id, reserved.text)
            reserved.raise_for_status()
            http.post(f"{mesh.url('checkout')}/orders", json=order).raise_for_status()
            charged = http.post(f"{mesh.url('payment')}/charges", json=order)
            if charged.status_code == 402:
                return fail(cid, 402, "payment-declined", order_id, charged.json().get("detail", ""))
            charged.raise_for_status()
            http.post(f"{mesh.url('checkout')}/orders/paid", json=order).raise_for_status()
        except httpx.HTTPError as exc:
            return fail(cid, 502, "upstream-error", order_id, f"{type(exc).__name__}: {exc}")
        log.info(
            "order %s placed", order_id,
            extra={"event.action": "place-order", "event.outcome": "success", "labels.order_id": order_id},
        )
        return JSONResponse({"status": "placed", "correlation_id": cid}, status_code=201)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"service": "ui", "ok": True}

    return wiring.asgi(app, rt.service_map)
