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
from corrtrace.ids import new_uuid4_hex

from ._core import (
    ErrorGuard,
    HeaderForms,
    HttpMiddleware,
    log_access,
    log_unhandled,
    status_code,
    with_id_header,
)
from .settings import CorrelationSettings, resolve

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ENVIRON_KEY = "corrtrace.correlation_id"
_500_STATUS = "500 Internal Server Error"
_500_BODY = b"Internal Server Error"
_500_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_500_BODY))))


class WSGICorrelationIdMiddleware(HttpMiddleware):
    """``app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)`` (Flask) or wrap any WSGI callable."""

    __slots__ = (
        "_bind_echo",
        "_fallback_key",
        "_forms",
        "_generate",
        "_key",
        "_letters",
        "_max_length",
        "_more_keys",
    )

    def __init__(self, app: WSGIApp, settings: CorrelationSettings | None = None, **overrides: Any) -> None:
        super().__init__(app, resolve(settings, overrides))
        self._forms = HeaderForms(self.settings.header_name, binary=False)
        self._key = self.settings.wsgi_key  # the primary header wins over the fallbacks
        # The first fallback is looked up directly (every fresh request looks: a loop costs ~40 % more); with no
        # fallback header it is the primary key again, a second miss.
        self._fallback_key, *rest = self.settings.wsgi_fallback_keys or (self._key,)
        self._more_keys = tuple(rest)
        self._letters = self._reader.letters
        self._max_length = self._reader.max_length
        self._generate = self._reader.generate
        self._bind_echo = _echo_method(self._forms, self._expose, self.errors)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            raw = environ.get(self._key)
            if raw is None:
                raw = environ.get(self._fallback_key)
                if raw is None and self._more_keys:
                    raw = next(filter(None.__ne__, map(environ.get, self._more_keys)), None)
            if raw is None:
                cid, excerpt = self._generate(), None
            elif (  # IdReader.valid_text's test (a policy of one character class), inlined: one frame less
                self._letters is not None
                and type(raw) is str
                and raw.isascii()
                and len(raw) <= self._max_length
                and raw.encode().translate(self._letters).isalpha()
            ):
                cid, excerpt = raw, None
            else:  # anything else (a rejected value, another kind of policy) takes the reader's whole rule
                cid, _, excerpt = self._reader.read(raw)
            environ[ENVIRON_KEY] = cid
            if self._rewrite:  # the app sees the ID it runs under in its own headers (a generated one too)
                environ[self._key] = cid
        except Exception as exc:  # a broken policy or an odd environ must not break the service
            self.errors.report("read-id", exc)
            cid, excerpt = new_uuid4_hex(), None
        echo = self._bind_echo((start_response, cid)) if self._echo else start_response
        request = self._observe(environ, echo, cid, excerpt) if self._observed else None
        token = set_correlation_id(cid)
        try:
            result = self.app(environ, echo if request is None else request.start_response)
        except Exception as exc:
            reset_correlation_id(token)
            return self._fail(exc, cid, start_response, request)
        except BaseException:
            reset_correlation_id(token)
            if request is not None:
                request.finish()
            raise
        if type(result) is list:  # nothing of the app runs while a list is sent: finish now
            reset_correlation_id(token)
            if request is not None:
                request.finish()
            return result
        return _Closing(result, token, cid, request)

    def _observe(self, environ: dict[str, Any], echo: StartResponse, cid: str, excerpt: str | None) -> _Request | None:
        """The request's state when an access line or a span observes it (None on a skipped path)."""
        log, tracer = self._observers(environ.get("PATH_INFO", ""))
        return None if log is None and tracer is None else _Request(self, echo, environ, cid, excerpt, log, tracer)

    def _fail(self, exc: Exception, cid: str, server_start: StartResponse, request: _Request | None) -> list[bytes]:
        """The app raised before returning a body: log it under the ID and answer 500 with the header."""
        log_unhandled(exc, cid, "WSGI")
        headers = [*_500_HEADERS, (self._forms.emit, cid)] if self._echo else list(_500_HEADERS)
        try:
            server_start(_500_STATUS, headers, sys.exc_info())
        finally:
            if request is not None:
                request.error = exc
                request.status = _500_STATUS
                request.finish()
        return [_500_BODY]


def _echo_method(forms: HeaderForms, expose: bool, errors: ErrorGuard) -> Callable[[Any], StartResponse]:
    """What binds a request's ``(server start_response, ID)`` into the ``start_response`` the app calls: the
    server's, with the ID header added by ``with_id_header``'s rule (never failing). A method bound per request
    (``function.__get__``) costs about half of defining a closure per request, and the call is as cheap.

    The common response names none of the ID and CORS headers: that scan and the copy with the ID appended are
    ``with_id_header``'s fast path written out here (one Python frame less per request, ~440 instructions);
    a response that names one goes through ``with_id_header`` itself."""
    lengths, special, emit = forms.lengths, forms.special, forms.emit

    def echo(request: tuple[StartResponse, str], status: str, headers: Any, exc_info: Any = None) -> Any:
        start_response, cid = request
        try:
            for name, _value in headers:
                if len(name) in lengths and name.lower() in special:
                    headers = with_id_header(headers, cid, forms, expose)
                    break
            else:
                headers = [*headers, (emit, cid)]
        except Exception as exc:
            errors.report("echo-header", exc)
        return start_response(status, headers, exc_info)

    return echo.__get__


class _Request:
    """An observed request's state, from the ID read to the access line: the ``start_response`` the app calls
    (records the status, then echoes), and ``finish`` (access line, span end)."""

    __slots__ = ("cid", "echo", "environ", "error", "excerpt", "log", "mw", "span", "start", "status")

    def __init__(
        self,
        mw: WSGICorrelationIdMiddleware,
        echo: StartResponse,
        environ: dict[str, Any],
        cid: str,
        excerpt: str | None,
        log: Any,
        tracer: Any,
    ) -> None:
        self.mw = mw
        self.echo = echo
        self.environ = environ
        self.cid = cid
        self.excerpt = excerpt  # of a rejected incoming ID, safe to log
        self.log = log
        self.start = time.perf_counter_ns() if log is not None else 0
        self.span = tracer.start_wsgi(environ, cid) if tracer is not None else None
        self.status: str | None = None
        self.error: BaseException | None = None

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        return self.echo(status, headers, exc_info)

    def finish(self) -> None:
        status = status_code(self.status)
        try:
            if self.log is not None:
                environ = self.environ
                log_access(
                    self.log,
                    self.cid,
                    environ.get("REQUEST_METHOD", "GET"),
                    environ.get("PATH_INFO", ""),
                    status,
                    self.error,
                    self.start,
                    environ.get("REMOTE_ADDR"),
                    self.excerpt,
                )
        except Exception as exc:
            self.mw.errors.report("access-log", exc)
        finally:
            if self.span is not None:
                self.mw._tracer.end(self.span, status, self.error)


class _Closing:
    """The app's body, with the ID bound until ``close()``; then the app's own ``close`` and the access line."""

    __slots__ = ("_cid", "_closed", "_request", "_result", "_token")

    def __init__(self, result: Iterable[bytes], token: Token[str | None], cid: str, request: _Request | None) -> None:
        self._result = result
        self._token = token
        self._cid = cid
        self._request = request
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except Exception as exc:  # the response has started: log it under the ID, the server aborts the body
            if self._request is not None:
                self._request.error = exc
            log_unhandled(exc, self._cid, "WSGI")
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
            if self._request is not None:
                self._request.finish()

    def __enter__(self) -> _Closing:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
