"""WSGI correlation-ID middleware (Flask, Django, any WSGI app), with the ASGI middleware's semantics.

A streamed body is produced after ``__call__`` returns, so the ID stays bound until the server closes the
iterable; a plain list body is reset at once (nothing of the app runs while the server iterates it).
The app finds the ID in ``environ["corrtrace.correlation_id"]`` as well as through ``get_correlation_id()``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from types import TracebackType
from typing import Any

from corrtrace.context import reset_correlation_id, set_correlation_id
from corrtrace.ids import Accepted, new_uuid4_hex

from ._core import _NOTHING, HeaderForms, HttpMiddleware, log_access, log_unhandled, status_code, with_id_header
from .settings import CorrelationSettings, resolve

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ENVIRON_KEY = "corrtrace.correlation_id"
_500_STATUS = "500 Internal Server Error"
_500_BODY = b"Internal Server Error"
_500_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_500_BODY))))


class WSGICorrelationIdMiddleware(HttpMiddleware):
    """``app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)`` (Flask) or wrap any WSGI callable."""

    __slots__ = ("_forms", "_keys")

    def __init__(self, app: WSGIApp, settings: CorrelationSettings | None = None, **overrides: Any) -> None:
        super().__init__(app, resolve(settings, overrides))
        self._forms = HeaderForms(self.settings.header_name, binary=False)
        self._keys = (self.settings.wsgi_key, *self.settings.wsgi_fallback_keys)  # the primary header first

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        found = self._read(environ)
        log, tracer = self._observers(environ.get("PATH_INFO", "")) if self._observed else _NOTHING
        request = _Request(self, start_response, environ, found, log, tracer)
        token = set_correlation_id(found.value)
        try:
            result = self.app(environ, request.start_response)
        except Exception as exc:
            reset_correlation_id(token)
            body = request.fail(exc)
            request.finish()
            return body
        except BaseException:
            reset_correlation_id(token)
            request.finish()
            raise
        if type(result) is list:  # nothing of the app runs while a list is sent: finish now
            reset_correlation_id(token)
            request.finish()
            return result
        return _Closing(result, token, request)

    def _read(self, environ: dict[str, Any]) -> Accepted:
        """The ID of the request (the primary header wins over the fallbacks), also put in ``environ``."""
        try:
            raw = None
            for key in self._keys:
                raw = environ.get(key)
                if raw is not None:
                    break
            found = self._reader.read(raw)
        except Exception as exc:  # a broken policy or an odd environ must not break the service
            self.errors.report("read-id", exc)
            found = Accepted(new_uuid4_hex(), "generated")
        environ[ENVIRON_KEY] = found.value
        if self._rewrite:  # the app sees the ID it runs under in its own headers (a generated one too)
            environ[self._keys[0]] = found.value
        return found


class _Request:
    """One request's state, from the ID read to the access line: the ``start_response`` the app calls (records
    the status, adds the header), the 500 for an exception, and ``finish`` (access line, span end)."""

    __slots__ = ("environ", "error", "found", "log", "mw", "server_start", "span", "start", "status")

    def __init__(
        self,
        mw: WSGICorrelationIdMiddleware,
        server_start: StartResponse,
        environ: dict[str, Any],
        found: Accepted,
        log: Any,
        tracer: Any,
    ) -> None:
        self.mw = mw
        self.server_start = server_start
        self.environ = environ
        self.found = found
        self.log = log
        self.start = time.perf_counter_ns() if log is not None else 0
        self.span = tracer.start_wsgi(environ, found.value) if tracer is not None else None
        self.status: str | None = None
        self.error: BaseException | None = None

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        mw = self.mw
        if mw._echo:
            try:
                headers = with_id_header(headers, self.found.value, mw._forms, mw._expose)
            except Exception as exc:
                mw.errors.report("echo-header", exc)
        return self.server_start(status, headers, exc_info)

    def fail(self, exc: Exception) -> list[bytes]:
        """The app raised before returning a body: log it under the ID and answer 500 with the header."""
        cid = self.found.value
        self.error = exc
        self.status = _500_STATUS
        log_unhandled(exc, cid, "WSGI")
        headers = [*_500_HEADERS, (self.mw._forms.emit, cid)] if self.mw._echo else list(_500_HEADERS)
        self.server_start(_500_STATUS, headers, sys.exc_info())
        return [_500_BODY]

    def finish(self) -> None:
        if self.log is None and self.span is None:
            return
        status = status_code(self.status)
        try:
            if self.log is not None:
                environ = self.environ
                log_access(
                    self.log,
                    self.found.value,
                    environ.get("REQUEST_METHOD", "GET"),
                    environ.get("PATH_INFO", ""),
                    status,
                    self.error,
                    self.start,
                    environ.get("REMOTE_ADDR"),
                    self.found.excerpt,
                )
        except Exception as exc:
            self.mw.errors.report("access-log", exc)
        finally:
            if self.span is not None:
                self.mw._tracer.end(self.span, status, self.error)


class _Closing:
    """The app's body, with the ID bound until ``close()``; then the app's own ``close`` and the access line."""

    __slots__ = ("_closed", "_request", "_result", "_token")

    def __init__(self, result: Iterable[bytes], token: Token[str | None], request: _Request) -> None:
        self._result = result
        self._token = token
        self._request = request
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except Exception as exc:  # the response has started: log it under the ID, the server aborts the body
            self._request.error = exc
            log_unhandled(exc, self._request.found.value, "WSGI")
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            try:
                reset_correlation_id(self._token)
            except ValueError:  # closed from another context (some servers): that context never had our ID
                pass
            self._request.finish()

    def __enter__(self) -> _Closing:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
