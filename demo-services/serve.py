"""Entry point of one demo child process: ``python -m corrtrace.demo.serve <service>``.

The runner starts one per service with ``CORRTRACE_DEMO_MESH`` (the layout file) and the secret in the
environment. Each process writes JSON log lines to its own file, which the collector process ships.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from corrtrace.demo.processes import exit_with_parent
from corrtrace.demo.runtime import Runtime
from corrtrace.demo.settings import SECRET_ENV, Mesh

from corrtrace import logging as ctlog

QUIET_LOGGERS = (
    "werkzeug",
    "httpx",
    "httpcore",
    "botocore",
    "urllib3",
    "uvicorn.access",
    "elastic_transport",
    "elasticsearch",
)
ASGI_APPS = {
    "ui": "corrtrace.demo.ui.app",
    "checkout": "corrtrace.demo.checkout.app",
    "payment": "corrtrace.demo.payment.app",
    "aggregation": "corrtrace.demo.aggregation.app",
}


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _run_asgi(app: Any, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()


def _run_wsgi(app: Any, port: int) -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    stop = _stop_event()

    def stop_when_asked() -> None:
        stop.wait()
        server.shutdown()

    threading.Thread(target=stop_when_asked, daemon=True).start()
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m corrtrace.demo.serve <service>", file=sys.stderr)
        return 2
    name = args[0]
    exit_with_parent()
    mesh = Mesh.load()
    ctlog.configure(name, version="demo", environment="demo", path=mesh.log_path(name))
    for noisy in QUIET_LOGGERS:  # their per-request lines repeat what corrtrace's access/outbound lines say
        logging.getLogger(noisy).setLevel(logging.WARNING)
    rt = Runtime(name, mesh, os.environ.get(SECRET_ENV) or mesh.secret())
    port = mesh.ports[name]
    if name in ASGI_APPS:
        _run_asgi(importlib.import_module(ASGI_APPS[name]).build(rt), port)
    elif name == "catalog":
        from corrtrace.demo.catalog.app import build

        _run_wsgi(build(rt), port)
    elif name == "shipping":
        from corrtrace.demo.shipping.main import serve

        serve(rt, _stop_event())
    elif name == "txmanager":
        from corrtrace.demo.manager import build

        _run_asgi(build(rt), port)
    elif name == "trigger":
        from corrtrace.demo.trigger import serve as serve_trigger

        serve_trigger(rt, _stop_event())
    elif name == "alerts":
        from corrtrace.demo.alerting import serve as serve_alerts

        serve_alerts(rt, _stop_event())
    elif name == "pipeline":
        from corrtrace.demo.pipeline import serve as serve_pipeline

        serve_pipeline(rt, _stop_event())
    else:
        print(f"unknown demo service {name!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
