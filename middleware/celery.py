"""Celery: the correlation ID follows a task from the code that sends it into the worker that runs it.

``install(app)`` connects three Celery signals (see middleware/README.md, "Celery"):

- ``before_task_publish``: the bound ID goes into the message headers (``delay``/``apply_async``, a retry, a task
  sending another task);
- ``task_prerun``: the worker validates the header like an HTTP header (the same ``IdPolicy``) and binds it for
  the task; a task that arrives without one gets a fresh ID, logged once;
- ``task_postrun``: the binding is reset, so nothing leaks into the next task the worker process runs.
"""

from __future__ import annotations

import logging
import threading
from contextvars import Token
from typing import Any

from celery import Celery, signals

from corrtrace.context import get_correlation_id, reset_correlation_id, set_correlation_id

from ._core import guarded_reader
from .settings import CorrelationSettings

LOGGER = "corrtrace.celery"
_log = logging.getLogger(LOGGER)


class _Binder:
    """The signal receivers for one set of settings; tokens are kept per task id until ``task_postrun``."""

    def __init__(self, settings: CorrelationSettings) -> None:
        self.header = settings.header_name
        self.reader = guarded_reader(settings.policy)  # one rule for HTTP headers and task headers
        self._tokens: dict[str, Token[str | None]] = {}
        self._lock = threading.Lock()

    def publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        correlation_id = get_correlation_id()
        if correlation_id is not None and headers is not None:
            headers[self.header] = correlation_id

    def prerun(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        request = getattr(task, "request", None)
        raw = request.get(self.header) if request is not None else None
        if raw is None and request is not None:  # protocol 1, or a header nested by an older client
            raw = (getattr(request, "headers", None) or {}).get(self.header)
        accepted = self.reader.read(raw)
        token = set_correlation_id(accepted.value)
        if task_id is not None:
            with self._lock:
                self._tokens[task_id] = token
        if accepted.status != "accepted":
            name = getattr(task, "name", "?")
            labels: dict[str, Any] = {"celery_task": name, "celery_task_id": task_id}
            if accepted.excerpt is not None:
                labels["rejected_correlation_id"] = accepted.excerpt
                _log.warning(
                    "celery task %s carried an invalid correlation ID; generated a fresh one",
                    name,
                    extra={"labels": labels},
                )
            else:
                _log.info(
                    "celery task %s started without a correlation ID; generated one", name, extra={"labels": labels}
                )

    def postrun(self, task_id: str | None = None, **_: Any) -> None:
        if task_id is None:
            return
        with self._lock:
            token = self._tokens.pop(task_id, None)
        if token is not None:
            try:
                reset_correlation_id(token)
            except ValueError:  # set in another context (a pool that moved the task): clear instead
                set_correlation_id(None)


_installed: dict[int, _Binder] = {}


def install(app: Celery, settings: CorrelationSettings | None = None) -> None:
    """Carry the correlation ID through ``app``'s tasks; calling it again for the same app does nothing.

    The message header is ``settings.header_name`` (``X-Correlation-ID``, as over HTTP: Celery's own
    ``correlation_id`` property is the task id), the policy ``settings.policy``.
    """
    if id(app) in _installed:
        return
    binder = _Binder(settings or CorrelationSettings())
    _installed[id(app)] = binder

    def prerun(sender: Any = None, **kwargs: Any) -> None:
        if getattr(kwargs.get("task"), "app", None) is app:
            binder.prerun(**kwargs)

    def postrun(sender: Any = None, **kwargs: Any) -> None:
        if getattr(kwargs.get("task"), "app", None) is app:
            binder.postrun(**kwargs)

    # a publish names its task, not its app: every installed app stamps the same bound ID, which is harmless
    signals.before_task_publish.connect(binder.publish, weak=False, dispatch_uid=f"corrtrace-publish-{id(app)}")
    signals.task_prerun.connect(prerun, weak=False, dispatch_uid=f"corrtrace-prerun-{id(app)}")
    signals.task_postrun.connect(postrun, weak=False, dispatch_uid=f"corrtrace-postrun-{id(app)}")
