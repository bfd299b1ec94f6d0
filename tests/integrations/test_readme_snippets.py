"""The logging snippets of middleware/README.md, executed as written (Django, Celery's app and Sentry run as
part of their own tests: the test project, the worker's app module and the Sentry fixture exec them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from loguru import logger as loguru_logger

from corrtrace.context import bind_correlation_id

from .readme import snippet


@pytest.fixture()
def clean_root() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def test_stdlib_own_formatter(clean_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    exec(snippet("stdlib logging with your own formatter"), {})
    logging.getLogger().setLevel(logging.INFO)
    with bind_correlation_id("req-std"):
        logging.getLogger("shop").info("paid")
    logging.getLogger("shop").info("idle")
    assert capsys.readouterr().err.splitlines() == ["INFO [req-std] shop: paid", "INFO [-] shop: idle"]


def test_structlog_json(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        exec(snippet("structlog", 0), {})
        with bind_correlation_id("req-struct"):
            structlog.get_logger().info("paid", amount=3)
    finally:
        structlog.reset_defaults()
    assert json.loads(capsys.readouterr().out) == {"amount": 3, "event": "paid", "correlation_id": "req-struct"}


def test_structlog_through_stdlib(clean_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        exec(snippet("structlog", 1), {})
        with bind_correlation_id("req-struct-std"):
            structlog.get_logger("shop").info("paid", amount=3)
    finally:
        structlog.reset_defaults()
    line = json.loads(capsys.readouterr().out)
    assert (line["message"], line["correlation_id"], line["amount"], line["service"]["name"]) == (
        "paid",
        "req-struct-std",
        3,
        "shop",
    )


def test_loguru(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        exec(snippet("loguru"), {})
        with bind_correlation_id("req-loguru"):
            loguru_logger.info("paid")
        loguru_logger.info("idle")
    finally:
        loguru_logger.remove()
        loguru_logger.configure(patcher=None)
        loguru_logger.add(__import__("sys").stderr)
    assert capsys.readouterr().out.splitlines() == ["INFO [req-loguru] paid", "INFO [None] idle"]


def test_celery_worker_logging(clean_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    from celery import signals

    namespace: dict[str, object] = {}
    exec(snippet("Celery", 1), namespace)
    try:
        signals.setup_logging.send(sender=None, loglevel="INFO", logfile=None, format="", colorize=False)
        with bind_correlation_id("req-worker"):
            logging.getLogger("celery.app.trace").info("Task t[1] succeeded in 0.01s: None")
    finally:
        signals.setup_logging.disconnect(namespace["json_logs"])
    line = json.loads(capsys.readouterr().out)
    assert (line["correlation_id"], line["service"]["name"]) == ("req-worker", "shop-worker")
