"""Celery: the ID travels in task headers to a REAL worker process over a REAL Redis broker (scripts/services).

Not ``task_always_eager`` and not the in-memory transport: the worker is a separate ``celery worker`` process.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from corrtrace.middleware import WSGICorrelationIdMiddleware
from flask import Flask

from corrtrace.context import bind_correlation_id

from .conftest import REDIS_URL, require_redis

ROOT = pathlib.Path(__file__).resolve().parents[2]
UUID7 = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
TIMEOUT = 60


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, pathlib.Path]]:
    require_redis()
    queue = f"corrtrace-tests-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {
        **os.environ,
        "CORRTRACE_TEST_REDIS_URL": REDIS_URL,
        "CORRTRACE_TEST_CELERY_QUEUE": queue,
        "CORRTRACE_TEST_WORKER_LOG": str(log_path),
        "CORRTRACE_TEST_SENTRY_EVENTS": str(log_path.with_name("sentry-events.jsonl")),
    }
    os.environ["CORRTRACE_TEST_CELERY_QUEUE"] = queue  # the publisher side imports the same app module
    os.environ["CORRTRACE_TEST_REDIS_URL"] = REDIS_URL
    from . import celery_app

    celery_app.app.conf.task_default_queue = queue
    with open(log_path.with_suffix(".err"), "w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integrations.celery_app",
                "worker",
                "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                queue,
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield celery_app, log_path
        finally:
            proc.send_signal(signal.SIGQUIT)  # cold shutdown: nothing is left to finish
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _lines(log_path: pathlib.Path) -> list[dict[str, Any]]:
    complete = log_path.read_text().rpartition("\n")[0]  # a line the worker is still writing is not read yet
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _messages(log_path: pathlib.Path, correlation_id: str) -> list[str]:
    return [line["message"] for line in _lines(log_path) if line.get("correlation_id") == correlation_id]


def _succeeded_line(log_path: pathlib.Path, correlation_id: str) -> str | None:
    """The worker's "Task ... succeeded" line: Celery logs it just *after* storing the result, so wait for it."""
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in _messages(log_path, correlation_id) if m.startswith("Task ") and "succeeded" in m]
        if found or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.05)


def test_a_task_sent_from_a_request_logs_the_request_id(worker: tuple[Any, pathlib.Path]) -> None:
    celery_app, log_path = worker
    web = Flask("celery-web")

    @web.post("/orders")
    def create() -> str:
        return str(celery_app.seen.delay("from request").id)

    web.wsgi_app = WSGICorrelationIdMiddleware(web.wsgi_app, access_log=False)  # type: ignore[method-assign]
    with web.test_client().post("/orders", headers={"X-Correlation-ID": "req-celery-1"}) as response:
        task_id = response.get_data(as_text=True)
    assert celery_app.app.AsyncResult(task_id).get(timeout=TIMEOUT) == "req-celery-1"
    assert "task ran from request" in _messages(log_path, "req-celery-1")
    succeeded = _succeeded_line(log_path, "req-celery-1")
    assert succeeded is not None and succeeded.startswith("Task tests.integrations.celery_app.seen[")


def test_without_an_id_the_worker_makes_a_fresh_one_and_logs_it(worker: tuple[Any, pathlib.Path]) -> None:
    celery_app, log_path = worker
    with bind_correlation_id("req-before"):  # the previous task in the same worker process had an ID
        assert celery_app.seen.delay("first").get(timeout=TIMEOUT) == "req-before"
    result = celery_app.seen.delay("no id")
    fresh = result.get(timeout=TIMEOUT)
    assert fresh and fresh != "req-before"
    assert re.fullmatch(UUID7, fresh)
    assert any("started without a correlation ID" in m for m in _messages(log_path, fresh))
    # reset after the task: the worker's "received" line for the next task is logged outside any ID
    [received] = [line for line in _lines(log_path) if line["message"].endswith(f"[{result.id}] received")]
    assert received["correlation_id"] is None


def test_a_junk_header_is_replaced_and_logged_escaped(worker: tuple[Any, pathlib.Path]) -> None:
    celery_app, log_path = worker
    fresh = celery_app.seen.apply_async(("junk",), headers={"X-Correlation-ID": "bad\r\nid " + "x" * 500}).get(
        timeout=TIMEOUT
    )
    assert fresh and "bad" not in fresh
    [warning] = [
        line
        for line in _lines(log_path)
        if line.get("correlation_id") == fresh and "invalid correlation ID" in line["message"]
    ]
    assert warning["labels"]["rejected_correlation_id"].startswith("bad\\x0d\\x0aid")
    assert len(warning["labels"]["rejected_correlation_id"]) < 40


def test_retries_keep_the_id(worker: tuple[Any, pathlib.Path]) -> None:
    celery_app, log_path = worker
    with bind_correlation_id("req-retry"):
        assert celery_app.flaky.delay("r1").get(timeout=TIMEOUT) == "req-retry"
    assert [m for m in _messages(log_path, "req-retry") if m.startswith("attempt")] == [
        "attempt 0 of r1",
        "attempt 1 of r1",
    ]


def test_a_task_sending_another_passes_the_id_on(worker: tuple[Any, pathlib.Path]) -> None:
    celery_app, log_path = worker
    with bind_correlation_id("req-chain"):
        child_id = celery_app.parent.delay("p1").get(timeout=TIMEOUT)
    assert celery_app.app.AsyncResult(child_id).get(timeout=TIMEOUT) == "req-chain"
    messages = _messages(log_path, "req-chain")
    assert "parent p1" in messages and "task ran child of p1" in messages


def test_sentry_events_in_a_task_carry_the_id(worker: tuple[Any, pathlib.Path]) -> None:
    """The real sentry-sdk inside the worker process: the message and the captured failure are both tagged."""
    celery_app, log_path = worker
    with bind_correlation_id("req-sentry"):
        result = celery_app.reports.delay("t1")
    with pytest.raises(RuntimeError, match="failure in t1"):
        result.get(timeout=TIMEOUT)
    events_path = log_path.with_name("sentry-events.jsonl")
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    tagged = {
        (event.get("message") or event["exception"]["values"][-1]["value"]): event["tags"].get("correlation_id")
        for event in events
    }
    assert tagged == {"message from t1": "req-sentry", "failure in t1": "req-sentry"}
