"""Real server processes (uvicorn, gunicorn + UvicornWorker, gunicorn sync + Flask): every line they write is a
corrtrace JSON line, an unhandled exception is logged once at ERROR with the request's ID and stack (no second
server traceback), and ``corrtrace search`` on the shipped lines shows that stack."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from corrtrace.cli import main

from ..integrations.readme import snippet
from .conftest import UUID7

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPS = "tests.middleware.serverapps"


def serve(command: list[str], port: int, out: pathlib.Path) -> dict[str, Any]:
    """Run the server with stdout and stderr into ``out``; send the requests; stop it. Returns the responses."""
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/ok", headers={"X-Correlation-ID": "srv-warmup"}, timeout=2)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"server did not start:\n{out.read_text()[-3000:]}") from None
                    time.sleep(0.2)
            with httpx.Client(base_url=base, timeout=10) as client:
                responses = {
                    "ok": client.get("/ok", headers={"X-Correlation-ID": "srv-ok-1"}),
                    "fresh": client.get("/ok"),
                    "boom": client.get("/boom", headers={"X-Correlation-ID": "srv-boom-1"}),
                }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return responses


def check(out: pathlib.Path, responses: dict[str, Any], tmp_path: pathlib.Path) -> list[dict[str, Any]]:
    assert responses["ok"].json()["bound"] == "srv-ok-1" and responses["ok"].headers["X-Correlation-ID"] == "srv-ok-1"
    fresh = responses["fresh"].headers["X-Correlation-ID"]
    assert UUID7.fullmatch(fresh) and responses["fresh"].json()["bound"] == fresh
    assert responses["boom"].status_code == 500 and responses["boom"].headers["X-Correlation-ID"] == "srv-boom-1"

    text = out.read_text()
    events = [json.loads(line) for line in text.splitlines()]  # every line the process wrote is JSON
    assert events and all(isinstance(e, dict) and "@timestamp" in e for e in events)
    assert "Exception in ASGI application" not in text and "Error handling request" not in text
    stacks = [e for e in events if e.get("error", {}).get("stack_trace")]
    assert len(stacks) == 1, stacks  # the exception is logged once (the access line says 500, without a stack)
    (error,) = stacks
    assert error["log"]["level"] == "ERROR" and error["correlation_id"] == "srv-boom-1"
    assert error["error"]["type"] == "ZeroDivisionError"
    assert 'raise ZeroDivisionError("boom view failed")' in error["error"]["stack_trace"]
    assert any(e["correlation_id"] == "srv-ok-1" and e["message"] == "ok view" for e in events)
    assert any(e["correlation_id"] == fresh for e in events)

    data = tmp_path / "data"
    shipped = CliRunner().invoke(main, ["collect", "--once", "--data-dir", str(data), str(out)])
    assert shipped.exit_code == 0, shipped.output
    found = CliRunner().invoke(main, ["search", "srv-boom-1", "--data-dir", str(data)], env={"COLUMNS": "200"})
    assert found.exit_code == 0, found.output
    assert "ZeroDivisionError: boom view failed" in found.output and 'raise ZeroDivisionError("boom' in found.output
    return events


def test_uvicorn_with_the_log_config_corrtrace_writes(tmp_path: pathlib.Path, free_port: Callable[[], int]) -> None:
    written = CliRunner().invoke(main, ["log-config", "--service", "uvicorn-srv"])
    assert written.exit_code == 0, written.output
    config = tmp_path / "log.json"
    config.write_text(written.output)
    port, out = free_port(), tmp_path / "uvicorn.out"
    responses = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{APPS}.asgi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-config",
            str(config),
        ],
        port,
        out,
    )
    events = check(out, responses, tmp_path)
    access = [e for e in events if e["log"]["logger"] == "uvicorn.access"]
    assert {e["correlation_id"] for e in access} >= {"srv-ok-1", "srv-boom-1"}  # uvicorn's own access lines too
    assert any(e["log"]["logger"] == "uvicorn.error" and "Started server process" in e["message"] for e in events)
    assert {e["service"]["name"] for e in events} == {"uvicorn-srv"}


@pytest.mark.parametrize(("worker", "app"), [("uvicorn.workers.UvicornWorker", "asgi_app"), ("sync", "wsgi_app")])
def test_gunicorn_with_logconfig_dict(
    worker: str, app: str, tmp_path: pathlib.Path, free_port: Callable[[], int]
) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(snippet("Servers"))  # the README's gunicorn.conf.py, as written
    port, out = free_port(), tmp_path / "gunicorn.out"
    responses = serve(
        [
            sys.executable,
            "-m",
            "gunicorn",
            f"{APPS}.{app}:app",
            "-k",
            worker,
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "-c",
            str(conf),
        ],
        port,
        out,
    )
    events = check(out, responses, tmp_path)
    assert any(e["log"]["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in events)
    access = {e["correlation_id"] for e in events if e["log"]["logger"] in ("gunicorn.access", "uvicorn.access")}
    assert access >= {"srv-ok-1", "srv-boom-1"}  # the server's access line carries the request's ID


def test_configure_keeps_a_server_access_log_that_was_switched_off(
    tmp_path: pathlib.Path, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``uvicorn --no-access-log`` with ``configure()`` called at import: corrtrace's access line is the only one
    (configure used to give uvicorn.access its handler back, so uvicorn wrote a second line per request)."""
    log = tmp_path / "app.jsonl"
    monkeypatch.setenv("CORRTRACE_TEST_LOG", str(log))
    port, out = free_port(), tmp_path / "uvicorn.out"
    command = [sys.executable, "-m", "uvicorn", f"{APPS}.configured_app:asgi", "--host", "127.0.0.1"]
    responses = serve([*command, "--port", str(port), "--no-access-log", "--log-level", "info"], port, out)
    assert responses["ok"].headers["X-Correlation-ID"] == "srv-ok-1"
    text = log.read_text()
    events = [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
    ours = {e["correlation_id"] for e in events if e["log"]["logger"] == "corrtrace.access"}
    assert ours >= {"srv-ok-1", "srv-boom-1", responses["fresh"].headers["X-Correlation-ID"]}
    assert any(e["log"]["logger"] == "uvicorn.error" for e in events)  # the server's other lines are still JSON
    assert not [e for e in events if e["log"]["logger"] == "uvicorn.access"]
