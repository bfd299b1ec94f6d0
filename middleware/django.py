"""Django: ``corrtrace.middleware.django.CorrelationIdMiddleware`` in ``MIDDLEWARE`` (see middleware/README.md).

Sync and async capable: under ASGI with async views no thread hop is added. The same settings and header rules
as the ASGI/WSGI adapters (``CorrelationSettings``, from the optional ``CORRTRACE`` dict in Django's settings): the
ID comes from ``X-Correlation-ID`` (then the fallbacks), is validated by the core policy, bound for the request,
put on ``request.correlation_id`` and echoed. A view's exception is logged by Django itself (``django.request``)
inside the binding, so with the README's ``LOGGING`` dict that line carries the ID and the stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from corrtrace.context import reset_correlation_id, set_correlation_id
from corrtrace.ids import new_uuid4_hex

from ._core import HttpMiddleware, log_access
from .settings import CorrelationSettings

_ERROR_ATTR = "_corrtrace_error"


def settings_from_django() -> CorrelationSettings:
    """``CorrelationSettings`` from ``settings.CORRTRACE`` (a dict of its fields); defaults when absent."""
    overrides = getattr(django_settings, "CORRTRACE", None) or {}
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured("settings.CORRTRACE must be a dict of CorrelationSettings fields")
    try:
        found = CorrelationSettings(**overrides)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"settings.CORRTRACE: {exc}") from None
    if found.tracing:
        raise ImproperlyConfigured(
            "settings.CORRTRACE: tracing=True is not available in the Django middleware; use "
            "opentelemetry-instrumentation-django (corrtrace lines then carry its trace.id/span.id)"
        )
    return found


class CorrelationIdMiddleware(HttpMiddleware):
    """Read, validate, bind and echo the correlation ID of each Django request; one access line per request
    (none on ``skip_paths``), at the level the ASGI/WSGI adapters use."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any], settings: CorrelationSettings | None = None) -> None:
        super().__init__(get_response, settings or settings_from_django())
        s = self.settings
        self.get_response = get_response
        self._keys = (s.wsgi_key, *s.wsgi_fallback_keys)
        self._header = s.header_name
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        cid, rejected = self._read(request)
        start = time.perf_counter_ns()
        token = set_correlation_id(cid)
        try:
            response = self.get_response(request)
            self._finish(request, response, cid, rejected, start)
        finally:
            reset_correlation_id(token)
        return response

    async def __acall__(self, request: Any) -> Any:
        cid, rejected = self._read(request)
        start = time.perf_counter_ns()
        token = set_correlation_id(cid)
        try:
            response = await self.get_response(request)
            self._finish(request, response, cid, rejected, start)
        finally:
            reset_correlation_id(token)
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Remember a view's exception for the access line (``error.type``); Django answers and logs it."""
        setattr(request, _ERROR_ATTR, exception)

    def _read(self, request: Any) -> tuple[str, str | None]:
        try:
            meta = request.META
            raw = None
            for key in self._keys:
                raw = meta.get(key)
                if raw is not None:
                    break
            found = self._reader.read(raw)
            cid = found.value
            if self._rewrite:
                meta[self._keys[0]] = cid
        except Exception as exc:  # an odd request must not break the site
            self.errors.report("read-id", exc)
            cid, found = new_uuid4_hex(), None
        request.correlation_id = cid
        return cid, found.excerpt if found is not None else None

    def _finish(self, request: Any, response: Any, cid: str, rejected: str | None, start: int) -> None:
        try:
            if self._echo and not response.has_header(self._header):
                response[self._header] = cid
        except Exception as exc:
            self.errors.report("echo-header", exc)
        if self._log is None:
            return
        try:
            log, _ = self._observers(request.path)
            if log is not None:
                log_access(
                    log,
                    cid,
                    request.method or "",
                    request.path,
                    response.status_code,
                    getattr(request, _ERROR_ATTR, None),
                    start,
                    request.META.get("REMOTE_ADDR"),
                    rejected,
                )
        except Exception as exc:
            self.errors.report("access-log", exc)
