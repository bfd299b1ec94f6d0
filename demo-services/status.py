"""The tiny ``/status`` endpoint the demo's background processes (pipeline, alerts, shipping) serve."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_status(port: int, report: Callable[[], dict[str, Any]]) -> ThreadingHTTPServer:
    """Answer every GET on 127.0.0.1:``port`` with ``report()`` as JSON, from a daemon thread.

    The caller stops it with ``server.shutdown()``.
    """

    class Status(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(report()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep stderr quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_poller(service: str, port: int, poller: Any, stop: threading.Event) -> None:
    """Run a local event-source mapping (``corrtrace.eventsource``) until ``stop``, its stats on ``/status``."""
    server = serve_status(
        port, lambda: {"service": service, "ok": True, "pending": poller.pending(), "stats": poller.stats.as_dict()}
    )
    try:
        poller.run(stop)
    finally:
        server.shutdown()
