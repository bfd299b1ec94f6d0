"""Optional OpenTelemetry tracing (the ``[otel]`` extra): one server span per request, the ID as attribute+baggage.

Why not wrap ``opentelemetry-instrumentation-asgi``: it makes three spans per request and parses every header
through generic getters (~120 µs); this module makes one span and reads ``traceparent``/``baggage`` from the
header list the middleware already walks. When an instrumentation (e.g. ``FastAPIInstrumentor``) has already
opened the SERVER span, that span is reused (attribute + baggage added), so no duplicate server span appears.
Incoming baggage is parsed here, validated and capped, so OTel's propagator never logs a raw header.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping
from contextvars import Token
from typing import Any, NamedTuple

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import inject
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

import corrtrace.logging as ct_logging
from corrtrace.ids import safe_excerpt

from . import outbound
from ._core import cap
from .settings import CorrelationSettings

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_BAGGAGE_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_BAGGAGE_VALUE = re.compile(r"[A-Za-z0-9\-_.:%]{0,256}")
MAX_BAGGAGE_HEADER = 4096
MAX_BAGGAGE_MEMBERS = 16
_SERVER = SpanKind.SERVER
_ERROR = Status(StatusCode.ERROR)


def parse_traceparent(raw: bytes | str | None) -> SpanContext | None:
    """A remote ``SpanContext`` from a W3C ``traceparent``; None for anything invalid (a new trace starts)."""
    if not raw:
        return None
    if isinstance(raw, str):
        if not raw.isascii():
            return None
        raw = raw.encode("ascii")
    if len(raw) > 512:
        return None
    m = _TRACEPARENT.fullmatch(raw.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    tid, sid = int(trace_id, 16), int(span_id, 16)
    if not tid or not sid:
        return None
    return SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(int(flags, 16) & 1))


def parse_baggage(raw: bytes | str | None) -> dict[str, str]:
    """The safe members of a W3C ``baggage`` header: capped in size and count, odd members dropped silently."""
    if not raw:
        return {}
    if isinstance(raw, bytes):
        if not raw.isascii():
            return {}
        raw = raw.decode("ascii")
    if len(raw) > MAX_BAGGAGE_HEADER:
        return {}
    found: dict[str, str] = {}
    for member in raw.split(","):
        key, sep, value = member.partition("=")
        key, value = key.strip(), value.split(";", 1)[0].strip()
        if sep and _BAGGAGE_KEY.fullmatch(key) and _BAGGAGE_VALUE.fullmatch(value):
            found[key] = value
            if len(found) >= MAX_BAGGAGE_MEMBERS:
                break
    return found


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace.id, span.id)`` of the current span in hex, for log lines; None outside a valid span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _inject(headers: MutableMapping[str, str]) -> None:
    inject(headers)


class SafeArgsFilter(logging.Filter):
    """Escape and cut the arguments of OTel's baggage warnings: it logs the raw header (log injection/flood)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(safe_excerpt(a) if isinstance(a, str | bytes) else a for a in args)
        return True


_BAGGAGE_LOGGER = "opentelemetry.baggage.propagation"
_safe_args = SafeArgsFilter()


def install() -> None:
    """Put ``trace.id``/``span.id`` in every corrtrace log line and ``traceparent``/``baggage`` on outbound calls.

    Also sanitises OTel's own baggage warnings, which an instrumentation upstream (FastAPIInstrumentor) emits with
    the raw incoming header.
    """
    ct_logging.set_trace_context_provider(current_trace_ids)
    outbound.set_trace_injector(_inject)
    baggage_logger = logging.getLogger(_BAGGAGE_LOGGER)
    if _safe_args not in baggage_logger.filters:
        baggage_logger.addFilter(_safe_args)


def uninstall() -> None:
    ct_logging.set_trace_context_provider(None)
    outbound.set_trace_injector(None)
    logging.getLogger(_BAGGAGE_LOGGER).removeFilter(_safe_args)


def remote_parent(traceparent: Any, bag: Any) -> Context | None:
    """The context a span continues: a valid incoming ``traceparent`` and the safe members of ``baggage``."""
    parent = None
    remote = parse_traceparent(traceparent)
    if remote is not None:
        parent = trace.set_span_in_context(NonRecordingSpan(remote))
    for key, value in parse_baggage(bag).items():
        parent = otel_baggage.set_baggage(key, value, parent)
    return parent


class ServerSpan(NamedTuple):
    """A started request span: what ``HttpTracer.end`` needs to finish it."""

    span: Any
    token: Token[Context]  # the attached OTel context, detached at the end
    owned: bool  # False when an instrumentation upstream opened the span: corrtrace only enriched it
    scope: Mapping[str, Any] | None  # the ASGI scope, for the route a framework sets while routing
    method: str


class _Tracer:
    """The settings' tracer and the ID's attribute name; creating one installs the log and outbound hooks."""

    __slots__ = ("_attr", "_tracer")

    def __init__(self, settings: CorrelationSettings) -> None:
        provider = settings.tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("corrtrace.middleware")
        self._attr = settings.message_attribute
        install()


class HttpTracer(_Tracer):
    """Start/end the one server span of a request for the ASGI and WSGI middleware."""

    __slots__ = ()

    def start_asgi(self, scope: Mapping[str, Any], cid: str) -> ServerSpan:
        traceparent = bag = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value
            elif name == b"baggage":
                bag = value
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        return self._start(method, scope.get("path", ""), traceparent, bag, cid, scope)

    def start_wsgi(self, environ: Mapping[str, Any], cid: str) -> ServerSpan:
        return self._start(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_TRACEPARENT"),
            environ.get("HTTP_BAGGAGE"),
            cid,
            None,
        )

    def _start(
        self, method: str, path: str, traceparent: Any, bag: Any, cid: str, scope: Mapping[str, Any] | None
    ) -> ServerSpan:
        current = trace.get_current_span()
        if getattr(current, "kind", None) is _SERVER and current.is_recording():
            # an instrumentation upstream already opened the server span: enrich it, never duplicate it
            current.set_attribute(self._attr, cid)
            token = otel_context.attach(otel_baggage.set_baggage(self._attr, cid))
            return ServerSpan(current, token, False, scope, method)
        parent = remote_parent(traceparent, bag)
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=_SERVER,
            attributes={"http.request.method": method, "url.path": cap(path, 1024), self._attr: cid},
        )
        ctx = otel_baggage.set_baggage(self._attr, cid, trace.set_span_in_context(span, parent))
        return ServerSpan(span, otel_context.attach(ctx), True, scope, method)

    def end(self, handle: ServerSpan, status: int, error: BaseException | None) -> None:
        try:
            otel_context.detach(handle.token)
        except Exception:
            pass
        if not handle.owned:
            return
        span, scope = handle.span, handle.scope
        if status:
            span.set_attribute("http.response.status_code", status)
        route = scope.get("route") if scope is not None else None
        route_path = getattr(route, "path", None)
        if isinstance(route_path, str):
            span.set_attribute("http.route", route_path)
            span.update_name(f"{handle.method} {route_path}")
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(_ERROR)
        elif status >= 500:
            span.set_status(_ERROR)
        span.end()


class RecordTracer(_Tracer):
    """One CONSUMER span per Lambda batch record, continuing the trace its message carried (``traceparent``)."""

    __slots__ = ()

    def start(self, source: str, identifier: str, cid: str, traceparent: Any, bag: Any) -> tuple[Any, Token[Context]]:
        parent = remote_parent(traceparent, bag)
        system = source.removeprefix("aws:")
        span = self._tracer.start_span(
            f"{system} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": f"aws_{system}", "messaging.message.id": identifier, self._attr: cid},
        )
        ctx = otel_baggage.set_baggage(self._attr, cid, trace.set_span_in_context(span, parent))
        return span, otel_context.attach(ctx)

    def end(self, handle: tuple[Any, Token[Context]], failed: bool) -> None:
        span, token = handle
        try:
            otel_context.detach(token)
        except Exception:
            pass
        if failed:
            span.set_status(_ERROR)
        span.end()
