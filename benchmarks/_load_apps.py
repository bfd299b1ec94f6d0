"""The small apps benchmarks/load.py runs under real servers, one variant per process.

``CORRTRACE_LOAD_VARIANT``: ``bare``, ``server-log`` (bare, the server's own access log written to
``CORRTRACE_LOAD_LOG``: uvicorn's set up here, gunicorn's by ``--access-logfile``), ``corrtrace`` (access lines on,
written as JSON to ``CORRTRACE_LOAD_LOG``), ``corrtrace-no-echo`` (the same without the response header),
``asgi-correlation-id`` (ASGI only) or ``otel`` (OpenTelemetry's
``OpenTelemetryMiddleware`` with an SDK ``TracerProvider`` and no exporter, as in benchmarks/middleware.py).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from fastapi import FastAPI
from flask import Flask

VARIANT = os.environ.get("CORRTRACE_LOAD_VARIANT", "bare")
# corrtrace's variants: as users run it, and without the ID in the response (``echo_header=False``; load.py
# --callgrind only: what the one added response header costs, the server's handling of it included)
CORRTRACE = ("corrtrace", "corrtrace-no-echo")
CALLGRIND = os.environ.get("CORRTRACE_LOAD_CALLGRIND") == "1"  # load.py --callgrind
if CALLGRIND:  # the wall clock stays at one instant, as at a real server's rate many requests share a millisecond
    # (under valgrind each would start a new one); set before corrtrace is imported (it binds ``time.time_ns`` at
    # import), a C callable like the original
    time.time_ns = itertools.repeat(time.time_ns()).__next__


def _slow_uvicorn_ticks() -> None:
    """``--callgrind``: uvicorn's housekeeping tick (``Server.main_loop`` sleeps 0.1 s of wall time between two)
    comes once per 5 s, so its cost stays out of the count: under valgrind a request lasts ~40 ms, and how many
    ticks fall on it would depend on valgrind's speed, i.e. on the machine's load (it moved the bare count by up to
    ~7k instructions per request between runs)."""
    import asyncio
    import types

    import uvicorn.server

    async def sleep(delay: float, result: Any = None) -> Any:
        return await asyncio.sleep(delay * 50 if delay == 0.1 else delay, result)

    uvicorn.server.asyncio = types.SimpleNamespace(**{**vars(asyncio), "sleep": sleep})  # type: ignore[assignment]


def _uvicorn_access_log() -> None:
    """``server-log``: uvicorn's own access log (its default format) written to ``CORRTRACE_LOAD_LOG`` instead of
    stdout; the server started without ``--no-access-log`` and at ``--log-level warning``, so the level is set here
    (the app is imported after uvicorn configured its logging)."""
    import logging

    from uvicorn.logging import AccessFormatter

    handler = logging.FileHandler(os.environ["CORRTRACE_LOAD_LOG"])
    handler.setFormatter(
        AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    )
    access = logging.getLogger("uvicorn.access")
    access.handlers = [handler]
    access.setLevel(logging.INFO)
    access.propagate = False


def _corrtrace_logging() -> None:
    from corrtrace.logging import configure

    configure("load-bench", path=os.environ["CORRTRACE_LOAD_LOG"], level="INFO")


def _tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider()


def _fastapi() -> Any:
    if CALLGRIND:
        _slow_uvicorn_ticks()
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, bool]:
        return {"ok": True}

    if VARIANT == "server-log":
        _uvicorn_access_log()
    if VARIANT in CORRTRACE:
        from corrtrace.middleware import CorrelationIdMiddleware

        _corrtrace_logging()
        return CorrelationIdMiddleware(app, echo_header=VARIANT == "corrtrace")
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

    if VARIANT in CORRTRACE:
        from corrtrace.middleware import WSGICorrelationIdMiddleware

        _corrtrace_logging()
        app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app, echo_header=VARIANT == "corrtrace")  # type: ignore[method-assign]
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
