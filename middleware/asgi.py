"""Pure ASGI correlation-ID middleware (no ``BaseHTTPMiddleware``): read, validate, bind, echo, log.

The hot path compares the request's header bytes with names encoded once, sets the ContextVar with a token and
resets it in ``finally``, and appends one precomputed pair to the response headers. The 500 produced by an
unhandled exception and the websocket accept carry the header too (asgi-correlation-id misses both).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from corrtrace.context import _correlation_id
from corrtrace.ids import safe_excerpt

from ._core import HttpMiddleware, fallback_id, log_access
from .settings import CorrelationSettings, resolve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

_START_TYPES = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
_EXPOSE = b"access-control-expose-headers"
_ALLOW_ORIGIN = b"access-control-allow-origin"
_INFO = logging.INFO
_set = _correlation_id.set
_reset = _correlation_id.reset


class CorrelationIdMiddleware(HttpMiddleware):
    """Give every HTTP and websocket request a correlation ID; other scope types (lifespan) pass through.

    ``CorrelationIdMiddleware(app, settings=CorrelationSettings(...))`` or keyword overrides such as
    ``CorrelationIdMiddleware(app, header_name="X-Request-ID", access_log=False)``.
    """

    __slots__ = ("_fallbacks", "_fast", "_header", "_special")

    def __init__(self, app: ASGIApp, settings: CorrelationSettings | None = None, **overrides: Any) -> None:
        super().__init__(app, resolve(settings, overrides))
        self._header = self.settings.header_bytes
        self._fallbacks = frozenset(self.settings.fallback_bytes)
        self._special = frozenset({self._header, _EXPOSE, _ALLOW_ORIGIN})
        self._fast = (self._header, self._fallbacks | {self._header}, self._allowed, self._max, self._generate)

    def _read(self, headers: Any) -> tuple[str, bytes, str | None]:
        """``(id, id as header bytes, excerpt of a rejected value or None)`` from the request headers."""
        header = self._header
        fallbacks = self._fallbacks
        raw = fallback = None
        for name, value in headers:
            if name == header:
                raw = value
                break
            if fallback is None and name in fallbacks:
                fallback = value
        if raw is None:
            raw = fallback
        reader = self._reader
        if raw is not None and reader.valid_bytes(raw):
            return raw.decode("latin-1"), raw, None
        cid = reader.generate()
        return cid, cid.encode("latin-1"), (safe_excerpt(raw) if raw else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if self._observed:
            await self._call_observed(scope, receive, send)
            return
        # the hot path: correlation only (no access line, no span), everything inlined
        header, names, allowed, max_length, generate = self._fast
        try:
            raw = fallback = None
            for name, value in scope["headers"]:  # one set lookup per header; the primary header wins
                if name in names:
                    if name == header:
                        raw = value
                        break
                    if fallback is None:
                        fallback = value
            if raw is None:
                raw = fallback
            if raw and (
                (len(raw) <= max_length and not raw.translate(None, allowed))
                if allowed is not None
                else self._reader.valid_bytes(raw)
            ):
                echo = raw
                cid = raw.decode("latin-1")
            else:
                cid = generate()
                echo = cid.encode("latin-1")
        except Exception as exc:  # a broken policy or odd scope must not break the service
            self.errors.report("read-id", exc)
            cid = fallback_id()
            echo = cid.encode("latin-1")
        if not self._echo:
            token = _set(cid)
            try:
                await self.app(scope, receive, send)
            finally:
                _reset(token)
            return
        started = False
        special = self._special
        pair = (self._header, echo)

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] in _START_TYPES:
                started = True
                try:
                    headers = message.get("headers") or ()
                    for name, _value in headers:
                        if name in special:  # CORS or an ID the app set itself: the careful path
                            message["headers"] = self._special_headers(list(headers), echo)
                            break
                    else:
                        message["headers"] = [*headers, pair]  # a copy: the app's list may be reused
                except Exception as exc:
                    self.errors.report("echo-header", exc)
            await send(message)

        token = _set(cid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not started and kind == "http":
                await self._send_500(send, echo)
            raise
        finally:
            _reset(token)

    async def _call_observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The slower path: an access line, a server span and/or the request-header rewrite."""
        kind = scope["type"]
        try:
            cid, echo, rejected = self._read(scope["headers"])
            if self._rewrite:
                self._rewrite_request(scope, echo)
        except Exception as exc:
            self.errors.report("read-id", exc)
            cid = fallback_id()
            echo, rejected = cid.encode("latin-1"), None
        log = self._log
        if log is not None and not log.isEnabledFor(_INFO):
            log = None
        start = time.perf_counter_ns() if log is not None else 0
        tracer = self._tracer
        span = tracer.start_asgi(scope, cid) if tracer is not None else None
        state: list[Any] = [0, None]  # [status, error]
        token = _set(cid)
        try:
            await self.app(scope, receive, self._wrap_send(send, echo, state))
        except Exception as exc:
            state[1] = exc
            if not state[0] and kind == "http":
                state[0] = 500
                await self._send_500(send, echo)
            raise
        finally:
            _reset(token)
            if log is not None:  # inside the span: the access line gets trace.id/span.id
                self._access(log, scope, cid, state, start, rejected)
            if span is not None:
                tracer.end(span, state[0], state[1])

    def _wrap_send(self, send: Send, echo: bytes, state: list[Any]) -> Send:
        echo_on = self._echo

        async def send_with_id(message: Message) -> None:
            if message["type"] in _START_TYPES:
                state[0] = message.get("status", 101)
                if echo_on:
                    try:
                        message["headers"] = self._response_headers(message.get("headers") or (), echo)
                    except Exception as exc:
                        self.errors.report("echo-header", exc)
            await send(message)

        return send_with_id

    def _response_headers(self, headers: Any, echo: bytes) -> list[tuple[bytes, bytes]]:
        """A copy of ``headers`` plus the ID; the CORS expose list is appended to, never overwritten."""
        out = list(headers)
        special = self._special
        for name, _value in out:
            if name in special:
                return self._special_headers(out, echo)
        out.append((self._header, echo))
        return out

    def _special_headers(self, out: list[tuple[bytes, bytes]], echo: bytes) -> list[tuple[bytes, bytes]]:
        own = self._header
        expose_at = -1
        cors = False
        for i, (name, _value) in enumerate(out):
            if name == own:
                return out  # the app set it itself: keep its value
            if name == _EXPOSE:
                expose_at = i
            elif name == _ALLOW_ORIGIN:
                cors = True
        out.append((own, echo))
        if self._expose:
            display = self.settings.header_name.encode("latin-1")
            if expose_at >= 0:
                name, value = out[expose_at]
                listed = [v.strip().lower() for v in value.split(b",")]
                if own not in listed and b"*" not in listed:
                    out[expose_at] = (name, value + b", " + display if value.strip() else display)
            elif cors:
                out.append((_EXPOSE, display))
        return out

    def _rewrite_request(self, scope: Scope, echo: bytes) -> None:
        """Make the app see the ID it runs under in its own request headers (a generated one included)."""
        own = self._header
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n != own] + [(own, echo)]

    async def _send_500(self, send: Send, echo: bytes) -> None:
        """Answer an unhandled exception with a 500 carrying the ID, so the caller can quote it."""
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
        if self._echo:
            headers.append((self._header, echo))
        try:
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": b"Internal Server Error", "more_body": False})
        except Exception as exc:  # the client went away: nothing left to tell it
            self.errors.report("send-500", exc)

    def _access(
        self, log: logging.Logger, scope: Scope, cid: str, state: list[Any], start: int, rejected: str | None
    ) -> None:
        try:
            status, error = state
            client = scope.get("client")
            method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
            log_access(log, cid, method, scope.get("path", ""), status, error, start,
                       client[0] if client else None, rejected)
        except Exception as exc:
            self.errors.report("access-log", exc)
