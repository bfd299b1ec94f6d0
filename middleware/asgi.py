"""Pure ASGI correlation-ID middleware (no ``BaseHTTPMiddleware``): read, validate, bind, echo, log.

The request's header bytes are compared with names encoded once, the ID is bound with a ContextVar token and
reset in ``finally``, and the response headers get one pair appended. The 500 produced by an unhandled
exception and the websocket accept carry the header too (asgi-correlation-id misses both).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from corrtrace.context import reset_correlation_id, set_correlation_id
from corrtrace.ids import new_uuid4_hex

from ._core import (
    _NOTHING,
    ErrorGuard,
    HeaderForms,
    HttpMiddleware,
    log_access,
    log_unhandled,
    with_id_header,
)
from .settings import CorrelationSettings, resolve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

_perf_ns = time.perf_counter_ns
_START_TYPES = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
_500_BODY = b"Internal Server Error"
_500_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(_500_BODY)).encode()))


class CorrelationIdMiddleware(HttpMiddleware):
    """Give every HTTP and websocket request a correlation ID; other scope types (lifespan) pass through.

    ``CorrelationIdMiddleware(app, settings=CorrelationSettings(...))`` or keyword overrides such as
    ``CorrelationIdMiddleware(app, header_name="X-Request-ID", access_log=False)``.
    """

    __slots__ = ("_bind_send", "_forms", "_names", "_valid")

    def __init__(self, app: ASGIApp, settings: CorrelationSettings | None = None, **overrides: Any) -> None:
        super().__init__(app, resolve(settings, overrides))
        self._forms = HeaderForms(self.settings.header_name, binary=True)
        self._names = frozenset({self._forms.own, *self.settings.fallback_bytes})
        self._bind_send = _send_method(self._forms, self._echo, self._expose, self.errors)
        self._valid = self._reader.valid_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        try:  # the ID (the primary header wins over the fallbacks) and its header bytes; never raises
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
            if raw is None:  # no ID header: a new ID, no Accepted tuple
                cid = self._reader.generate()
                echo = cid.encode("latin-1")
                excerpt = None
            elif type(raw) is bytes and self._valid(raw):  # the header value is already the ID's bytes (ASCII)
                cid, echo, excerpt = raw.decode("ascii"), raw, None
            else:  # rejected (or an odd value): the reader's new ID and the excerpt to log
                cid, status, excerpt = self._reader.read(raw)
                echo = raw if status == "accepted" else cid.encode("latin-1")
            if self._rewrite:  # the app sees the ID it runs under in its own headers (a generated one too)
                scope["headers"] = [(n, v) for n, v in scope["headers"] if n != own] + [(own, echo)]
        except Exception as exc:  # a broken policy or an odd scope must not break the service
            self.errors.report("read-id", exc)
            cid = new_uuid4_hex()
            echo, excerpt = cid.encode("ascii"), None
        tracer: Any
        if self._log_only:
            log, tracer = self._log, None
        else:
            log, tracer = self._observers(scope.get("path", "")) if self._observed else _NOTHING
        start = _perf_ns() if log is not None else 0
        span = tracer.start_asgi(scope, cid) if tracer is not None else None
        state: list[Any] = [send, echo, 0]  # the server's send, the ID's header bytes, the response status once started
        error: Exception | None = None
        token = set_correlation_id(cid)
        try:
            await self.app(scope, receive, self._bind_send(state))
        except Exception as exc:
            error = exc
            log_unhandled(exc, cid, "ASGI")
            if not state[2] and kind == "http":
                state[2] = 500
                await self._send_500(send, echo)
            raise  # the caller (server, test client, an outer middleware such as Sentry's) still learns of it
        finally:
            reset_correlation_id(token)
            if log is not None:  # inside the span: the access line gets trace.id/span.id
                try:
                    client = scope.get("client")
                    log_access(
                        log,
                        cid,
                        scope.get("method", "GET") if kind == "http" else "WEBSOCKET",
                        scope.get("path", ""),
                        state[2],
                        error,
                        start,
                        client[0] if client else None,
                        excerpt,
                        echo if self._plain_ids else None,
                    )
                except Exception as exc:
                    self.errors.report("access-log", exc)
            if span is not None:
                tracer.end(span, state[2], error)

    async def _send_500(self, send: Send, echo: bytes) -> None:
        """Answer an unhandled exception with a 500 carrying the ID, so the caller can quote it."""
        headers = [*_500_HEADERS, (self._forms.emit, echo)] if self._echo else list(_500_HEADERS)
        try:
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": _500_BODY, "more_body": False})
        except Exception as exc:  # the client went away: nothing left to tell it
            self.errors.report("send-500", exc)


def _send_method(
    forms: HeaderForms, echo: bool, expose: bool, errors: ErrorGuard
) -> Callable[[list[Any]], Callable[[Message], Awaitable[None]]]:
    """What binds a request's ``[server send, ID header bytes, status]`` into the ``send`` the app calls: it
    notes the status and adds the ID header to the response start, then returns the server's awaitable (a plain
    function, not a coroutine: no frame of its own per message). A method bound per request
    (``function.__get__``) costs less than a closure with cells."""

    def send_with_id(state: list[Any], message: Message) -> Awaitable[None]:
        if message["type"] in _START_TYPES:
            state[2] = message.get("status", 101)
            if echo:
                try:
                    message["headers"] = with_id_header(message.get("headers") or (), state[1], forms, expose)
                except Exception as exc:
                    errors.report("echo-header", exc)
        return state[0](message)  # type: ignore[no-any-return]

    return send_with_id.__get__
