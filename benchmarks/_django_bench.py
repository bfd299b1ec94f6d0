"""The Django row of benchmarks/middleware.py: corrtrace's Django middleware against django-guid's, in-process.

Both wrap the same trivial view; a request object is built per call (same cost for every candidate, the bare
view included, so it cancels out of the overhead). django-guid runs with its defaults (UUID validation on,
header echoed) under the same header name; corrtrace with the access log off, as in the other rows.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import Any

from _paired import Figures, paired_overheads

_clock = time.thread_time


def setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="bench",
            INSTALLED_APPS=["django_guid"],
            ALLOWED_HOSTS=["*"],
            USE_TZ=True,
            DJANGO_GUID={"GUID_HEADER_NAME": "X-Correlation-ID"},
            LOGGING_CONFIG=None,
        )
        django.setup()


def candidates() -> dict[str, Callable[[], Any]]:
    """``name -> factory`` of each Django callable chain: the bare view, corrtrace, django-guid."""
    setup_django()
    from corrtrace.middleware import CorrelationSettings
    from corrtrace.middleware.django import CorrelationIdMiddleware
    from django.http import HttpResponse
    from django_guid.middleware import guid_middleware

    def view(request: Any) -> Any:
        return HttpResponse(b"ok", content_type="text/plain")

    return {
        "bare": lambda: view,
        "corrtrace": lambda: CorrelationIdMiddleware(
            view, CorrelationSettings(access_log=False, skip_paths=("/healthz", "/metrics"))
        ),
        "django-guid": lambda: guid_middleware(view),
    }


def time_django(apps: dict[str, Any], requests: int, rounds: int, incoming_id: str | None) -> dict[str, Figures]:
    """Each chain's figures (``_paired``: paired batches against the bare view)."""
    from django.http import HttpRequest

    base_meta = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/orders",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "bench",
        "HTTP_USER_AGENT": "bench/1",
    }
    if incoming_id is not None:
        base_meta["HTTP_X_CORRELATION_ID"] = incoming_id

    def run(app: Any, n: int) -> float:
        start = _clock()
        for _ in range(n):
            request = HttpRequest()
            request.method = "GET"
            request.path = request.path_info = "/orders"
            request.META = dict(base_meta)
            app(request)
        return _clock() - start

    return paired_overheads(apps, in_fresh_context(run), requests, rounds)


def in_fresh_context(run: Callable[[Any, int], float]) -> Callable[[Any, int], float]:
    """``run`` with each batch in a fresh, empty ``contextvars.Context`` (also used by the WSGI rows of
    benchmarks/middleware.py): a ContextVar that an earlier row or candidate left set (django-guid's ``guid``,
    asgiref's ``Local``) would otherwise make every later ``ContextVar.set`` copy a bigger mapping, so a
    candidate's figure would depend on which rows ran before it."""

    def batch(app: Any, n: int) -> float:
        return contextvars.Context().run(run, app, n)

    return batch
