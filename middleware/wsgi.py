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
_perf_ns = time.perf_counter_ns
_500_STATUS = "500 Internal Server Error"
_500_BODY = b"Internal Server Error"
_500_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_500_BODY))))


class WSGICorrelationIdMiddleware(HttpMiddleware):
    """``app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)`` (Flask) or wrap any WSGI callable."""

    __slots__ = (
        "_bind",
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
        self._bind = _start_method(self._forms, self._echo, self._expose, self.errors)

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
        state = [start_response, cid, None]  # the server's start_response, the ID, the status once started
        if self._log_only:  # only the access line observes, on every path: its level is checked when written
            request: _Request | None = _Request(self, state, environ, excerpt, self._log, None)
        else:
            request = self._observe(environ, state, excerpt) if self._observed else None
        token = set_correlation_id(cid)
        try:
            result = self.app(environ, start_response if request is None and not self._echo else self._bind(state))
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
        if request is None:
            return _Closing(result, token, cid)
        request._result, request._token = result, token  # the observed request is its own body wrapper
        return request

    def _observe(self, environ: dict[str, Any], state: list[Any], excerpt: str | None) -> _Request | None:
        """The request's state when an access line or a span observes it (None on a skipped path)."""
        log, tracer = self._observers(environ.get("PATH_INFO", ""))
        return None if log is None and tracer is None else _Request(self, state, environ, excerpt, log, tracer)

    def _fail(self, exc: Exception, cid: str, server_start: StartResponse, request: _Request | None) -> list[bytes]:
        """The app raised before returning a body: log it under the ID and answer 500 with the header."""
        log_unhandled(exc, cid, "WSGI")
        headers = [*_500_HEADERS, (self._forms.emit, cid)] if self._echo else list(_500_HEADERS)
        try:
            server_start(_500_STATUS, headers, sys.exc_info())
        finally:
            if request is not None:
                request.error = exc
                request.state[2] = _500_STATUS
                request.finish()
        return [_500_BODY]


def _start_method(
    forms: HeaderForms, echo: bool, expose: bool, errors: ErrorGuard
) -> Callable[[list[Any]], StartResponse]:
    """What binds a request's ``[server start_response, ID, status]`` into the ``start_response`` the app calls: it
    notes the status (for the access line and the span) and calls the server's, with the ID header added by
    ``with_id_header``'s rule (never failing) when ``echo``. A method bound per request (``function.__get__``) costs
    about half of defining a closure per request, and the call is as cheap.

    The common response names none of the ID and CORS headers: that scan and the copy with the ID appended are
    ``with_id_header``'s fast path written out here (one Python frame less per request, ~440 instructions);
    a response that names one goes through ``with_id_header`` itself."""
    lengths, special, emit = forms.lengths, forms.special, forms.emit

    def start(state: list[Any], status: str, headers: Any, exc_info: Any = None) -> Any:
        state[2] = status
        if echo:
            try:
                for name, _value in headers:
                    if len(name) in lengths and name.lower() in special:
                        headers = with_id_header(headers, state[1], forms, expose)
                        break
                else:
                    headers = [*headers, (emit, state[1])]
            except Exception as exc:
                errors.report("echo-header", exc)
        return state[0](status, headers, exc_info)

    return start.__get__


class _Closing:
    """The app's body, with the ID bound until ``close()``; then the app's own ``close`` (and, for an observed
    request, the access line: ``_Request``)."""

    __slots__ = ("_cid", "_closed", "_result", "_token", "error")
    _observed = False  # True for a _Request: close() also finishes the request (no call otherwise)
    error: BaseException | None  # an exception the body raised (set only then; a _Request reads it)

    def __init__(self, result: Iterable[bytes], token: Token[str | None], cid: str) -> None:
        self._result = result
        self._token = token
        self._cid = cid
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except Exception as exc:  # the response has started: log it under the ID, the server aborts the body
            self.error = exc
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
            if self._observed:
                self.finish()

    def finish(self) -> None:
        """Nothing is written for a body no access line or span observes (``_Request.finish`` writes them)."""

    def __enter__(self) -> _Closing:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Request(_Closing):
    """An observed request's state, from the ID read to the access line (``finish``: access line, span end); the
    status is what the app passed to ``start_response`` (``state[2]``). A streamed body is returned as this object
    itself (``_Closing``'s body and ``close``, then ``finish``): one object per observed request."""

    __slots__ = ("environ", "excerpt", "log", "mw", "span", "start", "state")
    _observed = True

    def __init__(
        self,
        mw: WSGICorrelationIdMiddleware,
        state: list[Any],
        environ: dict[str, Any],
        excerpt: str | None,
        log: Any,
        tracer: Any,
    ) -> None:
        self.mw = mw
        self.state = state
        self.environ = environ
        self._cid = cid = state[1]
        self._closed = False
        self.excerpt = excerpt  # of a rejected incoming ID, safe to log
        self.log = log
        self.start = _perf_ns() if log is not None else 0
        self.span = tracer.start_wsgi(environ, cid) if tracer is not None else None
        self.error = None

    def finish(self) -> None:
        status = status_code(self.state[2])
        try:
            if self.log is not None:
                environ, cid = self.environ, self._cid
                log_access(
                    self.log,
                    cid,
                    environ.get("REQUEST_METHOD", "GET"),
                    environ.get("PATH_INFO", ""),
                    status,
                    self.error,
                    self.start,
                    environ.get("REMOTE_ADDR"),
                    self.excerpt,
                    cid.encode() if self.mw._plain_ids else None,
                )
        except Exception as exc:
            self.mw.errors.report("access-log", exc)
        finally:
            if self.span is not None:
                self.mw._tracer.end(self.span, status, self.error)
