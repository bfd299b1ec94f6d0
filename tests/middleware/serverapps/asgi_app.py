"""A FastAPI app as users write it, run by real uvicorn / gunicorn processes in test_servers.py."""

from __future__ import annotations

import logging

from corrtrace.middleware import CorrelationIdMiddleware
from fastapi import FastAPI

import corrtrace

app = FastAPI()
app.add_middleware(CorrelationIdMiddleware)


@app.get("/ok")
def ok() -> dict[str, str | None]:
    logging.getLogger("app").info("ok view")
    return {"bound": corrtrace.get_correlation_id()}


@app.get("/boom")
def boom() -> None:
    raise ZeroDivisionError("boom view failed")
