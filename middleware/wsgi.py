"""WSGI correlation-ID middleware (Flask, Django, any WSGI app), with the ASGI middleware's semantics.

A streamed body is produced after ``__call__`` returns, so the ID stays bound until the server closes the
iterable; a plain list body is reset at once (nothing of the app runs while the server iterates it).
The app finds the ID in ``environ["corrtrace.correlation_id"]`` as well as through ``get_correlation_id()``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from types import TracebackType
from typing import Any

from corrtrace.context import _correlation_id
from corrtrace.ids import safe_excerpt

from ._core import HttpMiddleware, fallback_id, log_access
from .settings import CorrelationSettings, resolve

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ENVIRON_KEY = "corrtrace.correlation_id"
_INFO = logging.INFO
_set = _correlation_id.set
_reset = _correlation_id.reset
_500_BODY = b"Internal Server Error"
_EXPOSE = "access-control-expose-headers"
_ALLOW_ORIGIN = "access-control-allow-origin"


class WSGICorrelationIdMiddleware(HttpMiddleware):
    """``app.wsgi_app = WSGICorrelationIdMiddleware(app.wsgi_app)`` (Flask) or wrap any WSGI callable."""

    __slots__ = ("_fallback_keys", "_key", "_lengths", "_lname", "_name", "_special")

    def __init__(self, app: WSGIApp, settings: CorrelationSettings | None = None, **overrides: Any) -> None:
        super().__init__(app, resolve(settings, overrides))
        s = self.settings
        self._key = s.wsgi_key
        self._fallback_keys = s.wsgi_fallback_keys
        self._name = s.header_name
        self._lname = s.header_name.lower()
        self._special = frozenset({self._lname, _EXPOSE, _ALLOW_ORIGIN})
        self._lengths = frozenset({len(self._lname), len(_EXPOSE), len(_ALLOW_ORIGIN)})

    def _read(self, environ: dict[str, Any]) -> tuple[str, str | None]:
        raw = environ.get(self._key)
        if raw is None:
            for key in self._fallback_keys:
                raw = environ.get(key)
                if raw is not None:
                    break
        if raw is not None and self._reader.valid_text(raw):
            return raw, None
        return self._reader.generate(), (safe_excerpt(raw) if raw else None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._observed:
            return self._call_observed(environ, start_response)
        try:  # the hot path, inlined: correlation only
            raw = environ.get(self._key)
            if raw is None and self._fallback_keys:
                for key in self._fallback_keys:
                    raw = environ.get(key)
                    if raw is not None:
                        break
            allowed = self._allowed
            if raw and (
                (len(raw) <= self._max and raw.isascii() and not raw.encode("ascii").translate(None, allowed))
                if allowed is not None
                else self._reader.valid_text(raw)
            ):
                cid = raw
            else:
                cid = self._generate()
            environ[ENVIRON_KEY] = cid
        except Exception as exc:
            self.errors.report("read-id", exc)
            cid = fallback_id()
        if not self._echo:
            return self._plain(environ, start_response, cid)
        started = None

        def start_with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal started
            started = status
            try:
                headers = self._response_headers(headers, cid)
            except Exception as exc:
                self.errors.report("echo-header", exc)
            return start_response(status, headers, exc_info)

        token = _set(cid)
        try:
            result = self.app(environ, start_with_id)
        except Exception as exc:
            _reset(token)
            return self._fail(start_response, cid, [started, None], exc)
        if type(result) is list:
            _reset(token)
            return result
        return _Closing(result, token, self, environ, cid, [started, None], 0, None, None)

    def _call_observed(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            cid, rejected = self._read(environ)
            environ[ENVIRON_KEY] = cid
            if self._rewrite:
                environ[self._key] = cid
        except Exception as exc:
            self.errors.report("read-id", exc)
            cid, rejected = fallback_id(), None
        log = self._log
        if log is not None and not log.isEnabledFor(_INFO):
            log = None
        if log is None and self._tracer is None:
            return (
                self._plain(environ, start_response, cid)
                if not self._echo
                else self._observed_body(environ, start_response, cid, rejected, None, None)
            )
        return self._observed_body(environ, start_response, cid, rejected, log, self._tracer)

    def _plain(self, environ: dict[str, Any], start_response: StartResponse, cid: str) -> Iterable[bytes]:
        token = _set(cid)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            _reset(token)
            raise
        if type(result) is list:
            _reset(token)
            return result
        return _Closing(result, token, self, environ, cid, [0, None], 0, None, None)

    def _observed_body(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        cid: str,
        rejected: str | None,
        log: logging.Logger | None,
        tracer: Any,
    ) -> Iterable[bytes]:
        """The slower path: an access line and/or a server span, finished when the body is closed."""
        start = time.perf_counter_ns() if log is not None or tracer is not None else 0
        span = tracer.start_wsgi(environ, cid) if tracer is not None else None
        state: list[Any] = [0, None]
        sr = self._wrap_start(start_response, cid, state) if self._echo else self._status_only(start_response, state)
        token = _set(cid)
        try:
            result = self.app(environ, sr)
        except Exception as exc:
            body = self._fail(start_response, cid, state, exc)
            _reset(token)
            self._finish(environ, cid, state, start, rejected, span)
            return body
        except BaseException:
            _reset(token)
            self._finish(environ, cid, state, start, rejected, span)
            raise
        if type(result) is list:  # nothing of the app runs while a list is sent: finish now
            _reset(token)
            self._finish(environ, cid, state, start, rejected, span)
            return result
        return _Closing(result, token, self, environ, cid, state, start, rejected, span)

    def _wrap_start(self, start_response: StartResponse, cid: str, state: list[Any]) -> StartResponse:
        def start_with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state[0] = status
            try:
                headers = self._response_headers(headers, cid)
            except Exception as exc:
                self.errors.report("echo-header", exc)
            return start_response(status, headers, exc_info)

        return start_with_id

    @staticmethod
    def _status_only(start_response: StartResponse, state: list[Any]) -> StartResponse:
        def start_recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state[0] = status
            return start_response(status, headers, exc_info)

        return start_recording

    def _response_headers(self, headers: list[tuple[str, str]], cid: str) -> list[tuple[str, str]]:
        """A copy of ``headers`` plus the ID; the CORS expose list is appended to, never overwritten."""
        lengths = self._lengths
        for name, _value in headers:
            if len(name) in lengths and name.lower() in self._special:
                return self._special_headers(headers, cid)
        return [*headers, (self._name, cid)]

    def _special_headers(self, headers: list[tuple[str, str]], cid: str) -> list[tuple[str, str]]:
        lname = self._lname
        expose_at = -1
        cors = False
        for i, (name, _value) in enumerate(headers):
            low = name.lower()
            if low == lname:
                return headers
            if low == _EXPOSE:
                expose_at = i
            elif low == _ALLOW_ORIGIN:
                cors = True
        out = [*headers, (self._name, cid)]
        if self._expose:
            if expose_at >= 0:
                name, value = out[expose_at]
                listed = [v.strip().lower() for v in value.split(",")]
                if lname not in listed and "*" not in listed:
                    out[expose_at] = (name, f"{value}, {self._name}" if value.strip() else self._name)
            elif cors:
                out.append(("Access-Control-Expose-Headers", self._name))
        return out

    def _fail(self, start_response: StartResponse, cid: str, state: list[Any], exc: Exception) -> list[bytes]:
        """The app raised before returning a body: log it under the ID and answer 500 with the header."""
        state[1] = exc
        state[0] = "500 Internal Server Error"
        logging.getLogger("corrtrace.middleware").error(
            "unhandled exception in the WSGI app", exc_info=exc, extra={"correlation_id": cid}
        )
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_500_BODY)))]
        if self._echo:
            headers.append((self._name, cid))
        start_response(state[0], headers, sys.exc_info())
        return [_500_BODY]

    def _finish(
        self,
        environ: dict[str, Any],
        cid: str,
        state: list[Any],
        start: int,
        rejected: str | None,
        span: Any,
    ) -> None:
        status_text, error = state
        try:
            status = int(str(status_text)[:3]) if status_text else 0
        except ValueError:
            status = 0
        try:
            self._access(environ, cid, status, error, start, rejected)
        finally:
            if span is not None:
                self._tracer.end(span, status, error)

    def _access(
        self, environ: dict[str, Any], cid: str, status: int, error: Any, start: int, rejected: str | None
    ) -> None:
        log = self._log
        if log is None or not start:
            return
        try:
            log_access(log, cid, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""), status, error,
                       start, environ.get("REMOTE_ADDR"), rejected)
        except Exception as exc:
            self.errors.report("access-log", exc)


class _Closing:
    """The app's body, with the ID bound until ``close()``; then the app's own ``close`` and the access line."""

    __slots__ = ("_cid", "_closed", "_environ", "_mw", "_rejected", "_result", "_span", "_start", "_state", "_token")

    def __init__(
        self,
        result: Iterable[bytes],
        token: Token[str | None],
        mw: WSGICorrelationIdMiddleware,
        environ: dict[str, Any],
        cid: str,
        state: list[Any],
        start: int,
        rejected: str | None,
        span: Any,
    ) -> None:
        self._result = result
        self._token = token
        self._mw = mw
        self._environ = environ
        self._cid = cid
        self._state = state
        self._start = start
        self._rejected = rejected
        self._span = span
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except Exception as exc:
            self._state[1] = exc
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
                _reset(self._token)
            except ValueError:  # closed from another context (some servers): that context never had our ID
                pass
            self._mw._finish(self._environ, self._cid, self._state, self._start, self._rejected, self._span)

    def __enter__(self) -> _Closing:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
