"""Shared helpers: a real Sentry client whose transport records envelopes in memory (sentry-sdk's own tests)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from corrtrace.sentry import CorrelationIdIntegration

from .readme import snippet


class RecordingTransport(Transport):
    """Keeps every envelope the real SDK would send; nothing leaves the process."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for envelope in self.envelopes:
            for item in envelope.items:
                if item.headers.get("type") == "event":
                    found.append(item.payload.json)
        return found


@pytest.fixture()
def sentry_events() -> Iterator[RecordingTransport]:
    """The README's Sentry set-up, run as written; then its transport is swapped for the recording one."""
    exec(snippet("Sentry"), {"SENTRY_DSN": "http://public@127.0.0.1:9/1"})  # never contacted
    transport = RecordingTransport()
    client = sentry_sdk.get_client()
    assert client.is_active() and any(isinstance(i, CorrelationIdIntegration) for i in client.integrations.values())
    client.transport = transport
    try:
        yield transport
    finally:
        sentry_sdk.flush()
        # No client at all (not init() without a DSN, whose integrations would still add sentry headers to
        # outbound calls): Sentry's patches then pass everything through for the tests after this one.
        sentry_sdk.get_global_scope().set_client(None)


REDIS_URL = os.environ.get("REDIS_URL", f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/0")


def require_redis() -> None:
    """Fail (never skip) with the command that starts Redis when it is not reachable."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}); start it with: scripts/services up redis", pytrace=False
        )


@pytest.fixture(scope="module")
def django_project() -> Iterator[None]:
    """django.setup() with the project's settings; the logging it configures is undone afterwards."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (lg.level, list(lg.handlers), lg.propagate)
        for name in ("django", "django.request", "django.server")
        for lg in [logging.getLogger(name)]
    }
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.integrations.djangoproject.settings"
    import django

    django.setup()
    yield
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, (level, handlers, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate
