"""Per-request overhead of corrtrace's ASGI/WSGI middleware vs asgi-correlation-id and OpenTelemetry, and the
cold import of the Lambda wrapper vs ``from aws_lambda_powertools import Logger``, all measured in this run.

Raw ASGI/WSGI apps called in-process (no server, no socket), timed with the thread's CPU clock, every batch in a
fresh, empty ``contextvars.Context``. Overhead = the median over ROUNDS rounds of (a candidate's batch of REQUESTS
requests - the bare app's batch run beside it), printed with the quartiles of those paired differences
(``_paired.py`` says why). "fresh" = no incoming ID (one is generated); "incoming" = a valid ID header (and a
``traceparent`` for the tracing rows). corrtrace runs with its options at their defaults plus ``skip_paths`` set
(``/healthz``, ``/metrics``), so every request pays the skip-path check.
Targets (issue 3 §7): ASGI overhead <= 0.5x asgi-correlation-id's; WSGI <= 2 µs; tracing <= 0.35x of
opentelemetry-instrumentation-asgi/-wsgi ``OpenTelemetryMiddleware``; cold import <= 0.5x Powertools Logger.

    python benchmarks/middleware.py [--requests 10000] [--rounds 21] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import _django_bench
from _paired import Figures, paired_overheads
from asgi_correlation_id import CorrelationIdMiddleware as CidMiddleware
from corrtrace.middleware import CorrelationIdMiddleware, WSGICorrelationIdMiddleware
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGI
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGI
from opentelemetry.sdk.trace import TracerProvider

INCOMING_ID = "0192f0c1-7a3b-7c4d-9e5f-0123456789ab"
INCOMING_UUID4 = "6f1c0d3e-2b4a-4f5e-9d8c-7b6a5f4e3d2c"  # valid for both corrtrace and django-guid's UUID check
CID_INCOMING = "6f1c0d3e2b4a4f5e9d8c7b6a5f4e3d2c"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SKIP = ("/healthz", "/metrics")  # checked on every request; the benchmark's path (/orders) is not skipped
# CPU time of this thread, not wall time: on a shared machine the wall clock also counts the time other
# processes hold the CPU, which would blur differences of a microsecond. Same clock for every candidate.
_clock = time.thread_time


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _asgi_headers(incoming: bool) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"bench"), (b"user-agent", b"bench/1"), (b"accept", b"*/*")]
    if incoming:
        headers += [
            (b"x-correlation-id", INCOMING_ID.encode()),
            (b"x-request-id", CID_INCOMING.encode()),
            (b"traceparent", TRACEPARENT.encode()),
        ]
    return headers


def time_asgi(apps: dict[str, Any], requests: int, rounds: int, incoming: bool) -> dict[str, Figures]:
    """Each app's figures (``_paired``). A fresh scope per request (asgi-correlation-id rewrites the scope's
    headers in place)."""
    base = _asgi_headers(incoming)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def run(app: Any, n: int) -> float:
        start = _clock()
        for _ in range(n):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/orders",
                "raw_path": b"/orders",
                "query_string": b"",
                "root_path": "",
                "headers": list(base),
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            }
            await app(scope, receive, send)
        return _clock() - start

    loop = asyncio.new_event_loop()

    def batch(app: Any, n: int) -> float:  # in a fresh, empty context, as every row
        return loop.run_until_complete(loop.create_task(run(app, n), context=contextvars.Context()))

    try:
        return paired_overheads(apps, batch, requests, rounds)
    finally:
        loop.close()


def time_wsgi(apps: dict[str, Any], requests: int, rounds: int, incoming: bool) -> dict[str, Figures]:
    extra = (
        {"HTTP_X_CORRELATION_ID": INCOMING_ID, "HTTP_X_REQUEST_ID": CID_INCOMING, "HTTP_TRACEPARENT": TRACEPARENT}
        if incoming
        else {}
    )

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def run(app: Any, n: int) -> float:
        start = _clock()
        for _ in range(n):
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/orders",
                "SCRIPT_NAME": "",
                "QUERY_STRING": "",
                "SERVER_NAME": "bench",
                "SERVER_PORT": "8000",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1",
                "HTTP_HOST": "bench",
                "HTTP_USER_AGENT": "bench/1",
                "wsgi.url_scheme": "http",
                **extra,
            }
            body = app(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return _clock() - start

    return paired_overheads(apps, _django_bench.in_fresh_context(run), requests, rounds)


def _import_env() -> dict[str, str]:
    """Every candidate imports from bytecode, as in a Lambda package that ships ``.pyc`` files.

    ``PYTHONDONTWRITEBYTECODE`` would make the editable corrtrace compile from source on every run while the
    installed peers load their ``.pyc``; a private ``PYTHONPYCACHEPREFIX`` gives all of them cached bytecode
    without writing into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "corrtrace-bench-pycache")
    env["PYTHONPATH"] = _packaged_copy()
    env["PYTHONWARNINGS"] = "ignore"
    return env


_PACKAGED: list[str] = []


def _packaged_copy() -> str:
    """corrtrace installed as a Lambda package would be (``pip install --target``), not through the editable
    finder that a development checkout adds to every import."""
    if not _PACKAGED:
        target = tempfile.mkdtemp(prefix="corrtrace-bench-pkg-")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, root],
            check=True,
            capture_output=True,
        )
        _PACKAGED.append(target)
    return _PACKAGED[0]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _import_wall(statement: str, runs: int) -> float:
    """Median CPU seconds (user + system) of ``python -c statement``, a fresh interpreter each time.

    CPU time rather than wall time: the machine is shared, and a cold start is CPU-bound (bytecode cached).
    """
    samples = []
    for _ in range(runs):
        start = _child_cpu()
        subprocess.run([sys.executable, "-c", statement], check=True, env=_import_env())
        samples.append(_child_cpu() - start)
    return statistics.median(samples)


PRELOADED = (
    "asyncio, logging, json, uuid, dataclasses, inspect, typing, re, enum, contextvars, threading, "
    "concurrent.futures, base64, urllib.parse"
)


def _marginal(statement: str) -> float:
    """Seconds for ``statement`` in a fresh interpreter where the common stdlib is already imported."""
    code = f"import {PRELOADED}, time; t = time.process_time(); {statement}; print(time.process_time() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=_import_env()
    ).stdout
    return float(out.strip())


def cold_import(runs: int) -> dict[str, dict[str, float]]:
    """Wall time of a fresh interpreter importing each module (minus ``python -c pass``), and the marginal cost."""
    statements = {
        "python -c pass": "pass",
        "corrtrace.middleware.aws_lambda": "import corrtrace.middleware.aws_lambda",
        "corrtrace core only (corrtrace.context)": "import corrtrace.context",
        "aws_lambda_powertools Logger": "from aws_lambda_powertools import Logger",
    }
    for statement in statements.values():  # warm the bytecode cache
        _import_wall(statement, 1)
        _marginal(statement)
    wall: dict[str, list[float]] = {name: [] for name in statements}
    marginal: dict[str, list[float]] = {name: [] for name in statements if name != "python -c pass"}
    for _ in range(runs):  # interleaved, so that machine noise hits every candidate alike
        for name, statement in statements.items():
            wall[name].append(_import_wall(statement, 1))
            if name in marginal:
                marginal[name].append(_marginal(statement))
    base = statistics.median(wall["python -c pass"])
    return {
        "wall_minus_pass_ms": {
            n: (statistics.median(v) - base) * 1e3 for n, v in wall.items() if n != "python -c pass"
        },
        "marginal_ms": {n: statistics.median(v) * 1e3 for n, v in marginal.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="requests per batch")
    parser.add_argument("--rounds", type=int, default=21, help="paired batches per candidate")
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # no access lines, no library warnings: the middleware itself is measured
    provider = TracerProvider()  # SDK, no exporter
    n, rounds = args.requests, args.rounds
    asgi: dict[str, Callable[[], Any]] = {
        "bare": lambda: bare_asgi,
        "corrtrace": lambda: CorrelationIdMiddleware(bare_asgi, access_log=False, skip_paths=SKIP),
        "asgi-correlation-id": lambda: CidMiddleware(bare_asgi),  # type: ignore[arg-type]
        "corrtrace tracing": lambda: CorrelationIdMiddleware(
            bare_asgi, access_log=False, tracing=True, tracer_provider=provider, skip_paths=SKIP
        ),
        "otel asgi": lambda: OtelASGI(bare_asgi, tracer_provider=provider),
    }
    wsgi: dict[str, Callable[[], Any]] = {
        "bare": lambda: bare_wsgi,
        "corrtrace": lambda: WSGICorrelationIdMiddleware(bare_wsgi, access_log=False, skip_paths=SKIP),
        "corrtrace tracing": lambda: WSGICorrelationIdMiddleware(
            bare_wsgi, access_log=False, tracing=True, tracer_provider=provider, skip_paths=SKIP
        ),
        "otel wsgi": lambda: OtelWSGI(bare_wsgi, tracer_provider=provider),
    }
    report: dict[str, Any] = {"requests": n, "rounds": rounds, "asgi": {}, "wsgi": {}, "django": {}}
    django = _django_bench.candidates()
    for mode in ("fresh", "incoming"):
        incoming = mode == "incoming"
        a = time_asgi({name: make() for name, make in asgi.items()}, n, rounds, incoming)
        w = time_wsgi({name: make() for name, make in wsgi.items()}, n, rounds, incoming)
        d = _django_bench.time_django(
            {name: make() for name, make in django.items()}, n, rounds, INCOMING_UUID4 if incoming else None
        )
        for kind, figures in (("asgi", a), ("wsgi", w), ("django", d)):
            report[kind][mode] = {name: f._asdict() for name, f in figures.items()}
    cold = cold_import(args.import_runs)
    report["cold_import_ms"] = cold["wall_minus_pass_ms"]
    report["marginal_import_ms"] = cold["marginal_ms"]
    report["ratios"] = ratios = {}
    for mode in ("fresh", "incoming"):
        over, wover, dover = (
            {name: f["overhead"] for name, f in report[kind][mode].items()} for kind in ("asgi", "wsgi", "django")
        )
        ratios[mode] = {
            "asgi overhead us": over["corrtrace"],
            "asgi vs asgi-correlation-id (target <= 0.5)": over["corrtrace"] / over["asgi-correlation-id"],
            "wsgi overhead us (target <= 2)": wover["corrtrace"],
            "asgi tracing vs otel asgi (target <= 0.35)": over["corrtrace tracing"] / over["otel asgi"],
            "wsgi tracing vs otel wsgi (target <= 0.35)": wover["corrtrace tracing"] / wover["otel wsgi"],
            "django vs django-guid (target <= 0.5)": dover["corrtrace"] / dover["django-guid"],
        }
    imports = report["cold_import_ms"]
    ratios["cold import vs powertools Logger (target <= 0.5)"] = (
        imports["corrtrace.middleware.aws_lambda"] / imports["aws_lambda_powertools Logger"]
    )
    marginal = report["marginal_import_ms"]
    ratios["marginal import vs powertools Logger"] = (
        marginal["corrtrace.middleware.aws_lambda"] / marginal["aws_lambda_powertools Logger"]
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"middleware: {rounds} rounds of {n}-request batches, in-process (µs/request: median of the candidate's"
        " batches; overhead: median of its batch minus the bare batch beside it, [quartiles] of those differences)"
    )
    for kind in ("asgi", "wsgi", "django"):
        for mode in ("fresh", "incoming"):
            print(f"  {kind.upper()} {mode}")
            for name, f in report[kind][mode].items():
                extra = "" if name == "bare" else f"  overhead {f['overhead']:+8.2f}  [{f['q1']:.2f} .. {f['q3']:.2f}]"
                print(f"    {name:22s} {f['per_request']:8.2f}{extra}")
    print(f"  cold import (ms of CPU, `python -c import` minus `python -c pass`, median of {args.import_runs})")
    for name, value in imports.items():
        print(f"    {name:40s} {value:7.1f}")
    print(f"  marginal import (ms, with {PRELOADED} already imported)")
    for name, value in report["marginal_import_ms"].items():
        print(f"    {name:40s} {value:7.1f}")
    print("  ratios")
    for mode in ("fresh", "incoming"):
        for name, value in ratios[mode].items():
            print(f"    [{mode}] {name:45s} {value:6.2f}")
    for key in ("cold import vs powertools Logger (target <= 0.5)", "marginal import vs powertools Logger"):
        print(f"    {key:56s} {ratios[key]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
