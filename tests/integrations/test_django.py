"""Django: the middleware in a real project (tests/integrations/djangoproject) through Django's test client
(sync and async views) and through real server processes (gunicorn WSGI, uvicorn ASGI)."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from corrtrace.context import get_correlation_id
from corrtrace.logging import configure

ROOT = pathlib.Path(__file__).resolve().parents[2]
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SETTINGS = "tests.integrations.djangoproject.settings"


@pytest.fixture()
def lines(django_project: None) -> Iterator[io.StringIO]:
    """corrtrace's JSON lines of the root logger (the project's LOGGING sends ``django`` there too)."""
    buffer = io.StringIO()
    handler = configure("django-test", stream=buffer, level="INFO")
    django_logger = logging.getLogger("django")
    django_logger.addHandler(handler)
    yield buffer
    django_logger.removeHandler(handler)
    logging.getLogger().removeHandler(handler)


def _events(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_sync_view_sees_binds_and_echoes_the_id(lines: io.StringIO) -> None:
    from django.test import Client

    response = Client().get("/hello", headers={"X-Correlation-ID": "req-dj-1"})
    assert response.status_code == 200
    assert response.json() == {"request": "req-dj-1", "bound": "req-dj-1"}
    assert response["X-Correlation-ID"] == "req-dj-1"
    assert get_correlation_id() is None  # reset after the request
    view_line, access = _events(lines)
    assert (view_line["message"], view_line["correlation_id"]) == ("hello view", "req-dj-1")
    assert access["event"]["dataset"] == "corrtrace.access" and access["correlation_id"] == "req-dj-1"
    assert access["http"]["response"]["status_code"] == 200 and access["url"]["path"] == "/hello"


def test_fresh_fallback_and_rejected_ids(lines: io.StringIO) -> None:
    from django.test import Client

    client = Client()
    fresh = client.get("/hello")
    assert UUID7.fullmatch(fresh["X-Correlation-ID"]) and fresh.json()["request"] == fresh["X-Correlation-ID"]
    assert client.get("/hello", headers={"X-Request-ID": "from-fallback"}).json()["request"] == "from-fallback"
    hostile = client.get("/hello", headers={"X-Correlation-ID": "a" * 500 + "\u00e9"})
    assert UUID7.fullmatch(hostile["X-Correlation-ID"])
    rejected = [e for e in _events(lines) if e.get("labels", {}).get("rejected_correlation_id")]
    [line] = rejected
    assert line["correlation_id"] == hostile["X-Correlation-ID"]
    assert len(line["labels"]["rejected_correlation_id"]) <= 33 and "a" * 500 not in json.dumps(line)


async def test_async_view_through_the_async_client(lines: io.StringIO) -> None:
    from django.test import AsyncClient

    response = await AsyncClient().get("/async-hello", headers={"X-Correlation-ID": "req-dj-async"})
    assert response.json() == {"request": "req-dj-async", "bound": "req-dj-async"}
    assert response["X-Correlation-ID"] == "req-dj-async"
    assert [e["correlation_id"] for e in _events(lines)] == ["req-dj-async", "req-dj-async"]


def test_an_exception_is_logged_with_the_id_and_the_stack(lines: io.StringIO) -> None:
    from django.test import Client

    response = Client(raise_request_exception=False).get("/boom", headers={"X-Correlation-ID": "req-dj-boom"})
    assert response.status_code == 500 and response["X-Correlation-ID"] == "req-dj-boom"
    events = _events(lines)
    [error] = [e for e in events if e["log"]["level"] == "ERROR"]
    assert error["correlation_id"] == "req-dj-boom" and error["log"]["logger"] == "django.request"
    assert "RuntimeError: view failed" in error["error"]["stack_trace"]
    [access] = [e for e in events if e.get("event", {}).get("dataset") == "corrtrace.access"]
    assert access["error"]["type"] == "RuntimeError" and access["http"]["response"]["status_code"] == 500
    assert all(e["correlation_id"] == "req-dj-boom" for e in events)


def test_bad_corrtrace_settings_are_one_clear_error(django_project: None) -> None:
    from corrtrace.middleware.django import CorrelationIdMiddleware
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    with override_settings(CORRTRACE={"header_nam": "X"}), pytest.raises(ImproperlyConfigured, match="header_nam"):
        CorrelationIdMiddleware(lambda request: None)
    with override_settings(CORRTRACE={"header_name": "bad name"}), pytest.raises(ImproperlyConfigured):
        CorrelationIdMiddleware(lambda request: None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(command: list[str], port: int, tmp_path: pathlib.Path) -> tuple[list[dict[str, Any]], str]:
    """Run the server, send the requests, stop it; its stdout lines (all must be JSON) and its stderr."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONPATH": str(ROOT)}
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/hello", timeout=2)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"server did not start: {err.read_text()[-2000:]}") from None
                    time.sleep(0.2)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                ok = client.get("/hello", headers={"X-Correlation-ID": "req-srv-1"})
                assert ok.json()["bound"] == "req-srv-1" and ok.headers["X-Correlation-ID"] == "req-srv-1"
                boom = client.get("/boom", headers={"X-Correlation-ID": "req-srv-boom"})
                assert boom.status_code == 500 and boom.headers["X-Correlation-ID"] == "req-srv-boom"
                fresh = client.get("/async-hello")
                assert UUID7.fullmatch(fresh.headers["X-Correlation-ID"])
                assert fresh.json()["bound"] == fresh.headers["X-Correlation-ID"]
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    text = out.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()], err.read_text()


def _check_server_lines(events: list[dict[str, Any]]) -> None:
    by_id: dict[str | None, list[dict[str, Any]]] = {}
    for event in events:
        by_id.setdefault(event["correlation_id"], []).append(event)
    assert [e["message"] for e in by_id["req-srv-1"]] == ["hello view", "GET /hello 200"]
    boom = by_id["req-srv-boom"]
    [error] = [e for e in boom if e["log"]["level"] == "ERROR"]
    assert "RuntimeError: view failed" in error["error"]["stack_trace"]
    assert {e["message"] for e in boom} >= {"about to fail", "GET /boom 500"}


def test_under_gunicorn_wsgi(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    events, _ = _serve(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "tests.integrations.djangoproject.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        port,
        tmp_path,
    )
    _check_server_lines(events)


def test_under_uvicorn_asgi(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    events, _ = _serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.integrations.djangoproject.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        port,
        tmp_path,
    )
    _check_server_lines(events)


def test_skip_paths_write_no_access_line_but_echo(lines: io.StringIO) -> None:
    from corrtrace.middleware import CorrelationSettings
    from corrtrace.middleware.django import CorrelationIdMiddleware
    from django.http import HttpResponse
    from django.test import RequestFactory

    middleware = CorrelationIdMiddleware(
        lambda request: HttpResponse("ok"), CorrelationSettings(skip_paths=("/healthz",))
    )
    factory = RequestFactory()
    health = middleware(factory.get("/healthz", headers={"X-Correlation-ID": "req-health"}))
    other = middleware(factory.get("/healthzx", headers={"X-Correlation-ID": "req-other"}))
    assert health["X-Correlation-ID"] == "req-health" and other["X-Correlation-ID"] == "req-other"
    assert [e["url"]["path"] for e in _events(lines)] == ["/healthzx"]
