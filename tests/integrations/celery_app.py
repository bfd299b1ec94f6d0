"""The Celery app the real worker process runs in the Celery tests (broker and backend: a real Redis)."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals

from corrtrace.context import get_correlation_id
from corrtrace.logging import configure
from tests.integrations.readme import snippet

REDIS_URL = os.environ.get("CORRTRACE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("CORRTRACE_TEST_CELERY_QUEUE", "corrtrace-tests")

_readme: dict[str, Any] = {}
exec(snippet("Celery"), _readme)  # the README's set-up, as written: Celery(...) + install(app)
app: Celery = _readme["app"]
app.conf.update(
    broker_url=REDIS_URL,
    result_backend=REDIS_URL,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_expires=300,
)
log = logging.getLogger("tests.celery")


@signals.worker_init.connect
def _sentry(**_: Any) -> None:
    """The real sentry-sdk in the worker; its transport appends each event to a file the test reads."""
    path = os.environ.get("CORRTRACE_TEST_SENTRY_EVENTS", "")
    if not path:
        return
    import sentry_sdk
    from sentry_sdk.transport import Transport

    from corrtrace.sentry import CorrelationIdIntegration

    class FileTransport(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            with open(path, "ab") as out:
                for item in envelope.items:
                    if item.headers.get("type") == "event":
                        out.write(item.payload.get_bytes() + b"\n")

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1", transport=FileTransport(), integrations=[CorrelationIdIntegration()]
    )


@signals.setup_logging.connect
def _json_logs(**_: Any) -> None:
    """The worker writes corrtrace's JSON lines (its own "Task ... succeeded" lines included) to a file."""
    path = os.environ.get("CORRTRACE_TEST_WORKER_LOG")
    if path:  # only the worker the tests start: a signal sent in the test process must not write into the clone
        configure("celery-worker", path=path, level="INFO")


@app.task
def seen(label: str = "") -> str | None:
    log.info("task ran %s", label)
    return get_correlation_id()


@app.task(bind=True, max_retries=2)
def flaky(self: Any, label: str) -> str | None:
    log.info("attempt %s of %s", self.request.retries, label)
    if self.request.retries < 1:
        raise self.retry(countdown=0)
    return get_correlation_id()


@app.task
def parent(label: str) -> str:
    """A task that sends another: the child's ID must be this task's."""
    log.info("parent %s", label)
    return str(seen.delay(f"child of {label}").id)


@app.task
def reports(label: str) -> None:
    """Sends one Sentry message, then fails: Sentry's Celery integration captures the exception."""
    import sentry_sdk

    sentry_sdk.capture_message(f"message from {label}")
    raise RuntimeError(f"failure in {label}")
