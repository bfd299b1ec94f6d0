"""A fault-injecting HTTP proxy in front of a REAL server (Elasticsearch, moto): the real server does the work,
the proxy only drops connections ("down"), or rewrites chosen requests/replies through a hook."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# hook(proxy, method, path, headers, body) -> None to forward unchanged, or (status, headers, body) to answer
Hook = Callable[["FaultProxy", str, str, dict[str, str], bytes], "tuple[int, dict[str, str], bytes] | None"]
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream: str, hook: Hook | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.hook = hook
        self.down = False
        self.requests = 0
        self.refused = 0
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.down:
                    with proxy.lock:
                        proxy.refused += 1
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                with proxy.lock:
                    proxy.requests += 1
                headers = {k: v for k, v in self.headers.items()}
                answer = proxy.hook(proxy, self.command, self.path, headers, body) if proxy.hook else None
                if answer is None:
                    answer = proxy.forward(self.command, self.path, headers, body)
                status, out_headers, out_body = answer
                self.send_response(status)
                for key, value in out_headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(out_body)))
                self.end_headers()
                self.wfile.write(out_body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            send = {k: v for k, v in headers.items() if k.lower() not in _HOP}
            send["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
