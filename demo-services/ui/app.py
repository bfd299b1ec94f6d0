"""UI (FastAPI): takes an order and drives it through catalog, checkout and payment, then places it.

A business failure (payment declined, out of stock) or a failed call is written down in the manager's failure
table (``report_failure``, the talk's event-driven path): the trigger reading the table's stream asks the manager
to roll the request back everywhere, now or, if the manager is down, once it is back. On success the order is
*placed*: shipping picks it up from checkout's stream and, once it has shipped, asks the manager to commit (card
payments work that way too: authorise now, capture at shipment). The correlation ID bound by the middleware
travels on every call.
"""

from __future__ import annotations

from typing import Any

import httpx
from corrtrace.demo import wiring
from corrtrace.demo.runtime import MANAGER_UNAVAILABLE, Runtime
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class ManagerDown(Exception):
    """A participant answered 503: it could not register with the transaction manager."""


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
        log.warning(
            "order %s failed (%s): reporting it for rollback",
            order_id,
            reason,
            extra={
                "event.action": "place-order",
                "event.outcome": "failure",
                "labels.reason": reason,
                "labels.order_id": order_id,
            },
        )
        try:
            rt.failures.report(cid, reason)
        except Exception:  # logged with its stack: the code-error alarm asks the manager for the rollback
            log.exception("could not write the failure of order %s down", order_id)
        return JSONResponse(
            {"status": "rolled_back", "reason": reason, "detail": detail, "correlation_id": cid}, status_code=status
        )

    def call(service: str, path: str, order: dict[str, Any]) -> httpx.Response:
        response = rt.http.post(f"{mesh.url(service)}{path}", json=order)
        if response.status_code == 503:
            raise ManagerDown(service)
        return response

    @app.post("/orders")
    def place(body: Order) -> JSONResponse:
        cid = wiring.current_id()
        order = body.model_dump()
        order_id = body.order_id
        http = rt.http
        try:
            reserved = call("catalog", "/reservations", order)
            if reserved.status_code == 409:
                return fail(cid, 409, "out-of-stock", order_id, reserved.text)
            reserved.raise_for_status()
            call("checkout", "/orders", order).raise_for_status()
            charged = call("payment", "/charges", order)
            if charged.status_code == 402:
                return fail(cid, 402, "payment-declined", order_id, charged.json().get("detail", ""))
            charged.raise_for_status()
            http.post(f"{mesh.url('checkout')}/orders/paid", json=order).raise_for_status()
        except ManagerDown:  # a service could not register, so it changed nothing: fail what ran before it
            return fail(cid, 503, MANAGER_UNAVAILABLE, order_id, "the transaction manager is not reachable")
        except httpx.HTTPError as exc:
            return fail(cid, 502, "upstream-error", order_id, f"{type(exc).__name__}: {exc}")
        log.info(
            "order %s placed",
            order_id,
            extra={"event.action": "place-order", "event.outcome": "success", "labels.order_id": order_id},
        )
        return JSONResponse({"status": "placed", "correlation_id": cid}, status_code=201)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"service": "ui", "ok": True}

    return wiring.asgi(app, rt.service_map)
