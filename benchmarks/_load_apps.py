"""The small apps benchmarks/load.py runs under real servers, one variant per process.

``CORRTRACE_LOAD_VARIANT``: ``bare``, ``corrtrace`` (access lines on, written as JSON to
``CORRTRACE_LOAD_LOG``), ``asgi-correlation-id`` (ASGI only) or ``otel`` (OpenTelemetry's ``OpenTelemetryMiddleware``
with an SDK ``TracerProvider`` and no exporter, as in benchmarks/middleware.py).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from flask import Flask

VARIANT = os.environ.get("CORRTRACE_LOAD_VARIANT", "bare")


def _corrtrace_logging() -> None:
    from corrtrace.logging import configure

    configure("load-bench", path=os.environ["CORRTRACE_LOAD_LOG"], level="INFO")


def _tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider()


def _fastapi() -> Any:
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, bool]:
        return {"ok": True}

    if VARIANT == "corrtrace":
        from corrtrace.middleware import CorrelationIdMiddleware

        _corrtrace_logging()
        return CorrelationIdMiddleware(app)
    if VARIANT == "asgi-correlation-id":
        from asgi_correlation_id import CorrelationIdMiddleware as CidMiddleware

        app.add_middleware(CidMiddleware)
    if VARIANT == "otel":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(app, tracer_provider=_tracer_provider())
    return app


def _flask() -> Any:
    app = Flask("load-bench")

    @app.get("/")
    def index() -> dict[str, bool]:
        return {"ok": True}

    if VARIANT == "corrtrace":
        from corrtrace.middleware import WSGICorrelationIdMiddleware

        _corrtrace_logging()
        app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    if VARIANT == "otel":
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app, tracer_provider=_tracer_provider())  # type: ignore[method-assign]
    return app


def __getattr__(name: str) -> Any:
    """Build only the app the server asks for (``_load_apps:fastapi_app`` or ``_load_apps:flask_app``)."""
    if name == "fastapi_app":
        return _fastapi()
    if name == "flask_app":
        return _flask()
    raise AttributeError(name)
