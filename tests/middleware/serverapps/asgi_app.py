"""A FastAPI app as users write it, run by real uvicorn / gunicorn processes in test_servers.py."""

from __future__ import annotations

from corrtrace.middleware import CorrelationIdMiddleware
from fastapi import FastAPI

from .views import boom, ok

app = FastAPI()
app.add_middleware(CorrelationIdMiddleware)
app.get("/ok")(ok)
app.get("/boom")(boom)
