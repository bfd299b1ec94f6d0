"""Shared helpers for the middleware tests: captured JSON log lines, raw ASGI calls, a real uvicorn server."""

from __future__ import annotations

import io
import json
import logging
import pathlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from corrtrace.logging import configure

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class LogCapture:
    """Every JSON line written through corrtrace's logging while the test runs (root logger)."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def events(self, dataset: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        if dataset is not None:
            found = [e for e in found if e.get("event", {}).get("dataset") == dataset]
        return found


@pytest.fixture()
def logs() -> Iterator[LogCapture]:
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    handler = configure("mw-test", stream=buffer, level="DEBUG")
    try:
        yield LogCapture(buffer)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


async def call_asgi(
    app: Any, headers: list[tuple[bytes, bytes]] | None = None, path: str = "/", method: str = "GET"
) -> list[dict[str, Any]]:
    """Call an ASGI app with raw header bytes (httpx refuses CR/LF, a raw call does not); return sent messages."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers or []),
        "client": ("10.1.2.3", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def response_header(messages: list[dict[str, Any]], name: bytes) -> bytes | None:
    start = next(m for m in messages if m["type"] in ("http.response.start", "websocket.accept"))
    values = [v for k, v in start.get("headers", []) if k.lower() == name]
    assert len(values) <= 1, f"header {name!r} sent {len(values)} times"
    return values[0] if values else None


class UvicornServer:
    """A real uvicorn server on a free loopback port, in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture()
def uvicorn_server(free_port: Callable[[], int]) -> Callable[[Any], UvicornServer]:
    def start(app: Any) -> UvicornServer:
        return UvicornServer(app, free_port())

    return start
