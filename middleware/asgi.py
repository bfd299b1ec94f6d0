"""Pure ASGI correlation-ID middleware (no ``BaseHTTPMiddleware``): read, validate, bind, echo, log.

The request's header bytes are compared with names encoded once, the ID is bound with a ContextVar token and
reset in ``finally``, and the response headers get one pair appended. The 500 produced by an unhandled
exception and the websocket accept carry the header too (asgi-correlation-id misses both).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from corrtrace.context import reset_correlation_id, set_correlation_id
from corrtrace.ids import Accepted, new_uuid4_hex

from ._core import _NOTHING, HeaderForms, HttpMiddleware, log_access, log_unhandled, with_id_header
from .settings import CorrelationSettings, resolve

if TYPE_CHECKING:
    import logging

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

_START_TYPES = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
_500_BODY = b"Internal Server Error"
_500_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(_500_BODY)).encode()))


class CorrelationIdMiddleware(HttpMiddleware):
    """Give every HTTP and websocket request a correlation ID; other scope types (lifespan) pass through.

    ``CorrelationIdMiddleware(app, settings=CorrelationSettings(...))`` or keyword overrides such as
    ``CorrelationIdMiddleware(app, header_name="X-Request-ID", access_log=False)``.
    """

    __slots__ = ("_forms", "_names")

    def __init__(self, app: ASGIApp, settings: CorrelationSettings | None = None, **overrides: Any) -> None:
        super().__init__(app, resolve(settings, overrides))
        self._forms = HeaderForms(self.settings.header_name, binary=True)
        self._names = frozenset({self._forms.own, *self.settings.fallback_bytes})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        found, echo = self._read(scope)
        cid = found.value
        log, tracer = self._observers(scope.get("path", "")) if self._observed else _NOTHING
        start = time.perf_counter_ns() if log is not None else 0
        span = tracer.start_asgi(scope, cid) if tracer is not None else None
        status = 0
        error: Exception | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in _START_TYPES:
                status = message.get("status", 101)
                if self._echo:
                    try:
                        message["headers"] = with_id_header(
                            message.get("headers") or (), echo, self._forms, self._expose
                        )
                    except Exception as exc:
                        self.errors.report("echo-header", exc)
            await send(message)

        token = set_correlation_id(cid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = exc
            log_unhandled(exc, cid, "ASGI")
            if not status and kind == "http":
                status = 500
                await self._send_500(send, echo)
            raise  # the caller (server, test client, an outer middleware such as Sentry's) still learns of it
        finally:
            reset_correlation_id(token)
            if log is not None:  # inside the span: the access line gets trace.id/span.id
                self._access(log, scope, cid, status, error, start, found.excerpt)
            if span is not None:
                tracer.end(span, status, error)

    def _read(self, scope: Scope) -> tuple[Accepted, bytes]:
        """The ID of the request (the primary header wins over the fallbacks) and its header bytes; never raises.

        An accepted header value is already the ID's bytes (ASCII): only a generated ID is encoded.
        """
        try:
            own, names = self._forms.own, self._names
            raw = fallback = None
            for name, value in scope["headers"]:  # one set lookup per header
                if name in names:
                    if name == own:
                        raw = value
                        break
                    if fallback is None:
                        fallback = value
            if raw is None:
                raw = fallback
            found = self._reader.read(raw)
            echo = raw if raw is not None and found.status == "accepted" else found.value.encode("latin-1")
            if self._rewrite:  # the app sees the ID it runs under in its own headers (a generated one too)
                scope["headers"] = [(n, v) for n, v in scope["headers"] if n != own] + [(own, echo)]
            return found, echo
        except Exception as exc:  # a broken policy or an odd scope must not break the service
            self.errors.report("read-id", exc)
            value = new_uuid4_hex()
            return Accepted(value, "generated"), value.encode("ascii")

    async def _send_500(self, send: Send, echo: bytes) -> None:
        """Answer an unhandled exception with a 500 carrying the ID, so the caller can quote it."""
        headers = [*_500_HEADERS, (self._forms.emit, echo)] if self._echo else list(_500_HEADERS)
        try:
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": _500_BODY, "more_body": False})
        except Exception as exc:  # the client went away: nothing left to tell it
            self.errors.report("send-500", exc)

    def _access(
        self,
        log: logging.Logger,
        scope: Scope,
        cid: str,
        status: int,
        error: Exception | None,
        start: int,
        rejected: str | None,
    ) -> None:
        try:
            client = scope.get("client")
            method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
            log_access(
                log, cid, method, scope.get("path", ""), status, error, start, client[0] if client else None, rejected
            )
        except Exception as exc:
            self.errors.report("access-log", exc)
