"""A FastAPI app that calls ``corrtrace.logging.configure`` at import (as benchmarks and small services do),
writing JSON lines to the file named by ``CORRTRACE_TEST_LOG``."""

from __future__ import annotations

import os

from corrtrace.middleware import CorrelationIdMiddleware
from fastapi import FastAPI

from corrtrace.logging import configure

from .views import boom, ok

configure("configured-srv", path=os.environ["CORRTRACE_TEST_LOG"], level="INFO")
app = FastAPI()
app.get("/ok")(ok)
app.get("/boom")(boom)
asgi = CorrelationIdMiddleware(app)
