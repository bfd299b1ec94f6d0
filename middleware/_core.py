"""Pieces every adapter shares: the ID reader, the response-header rule, skip paths, the access and error lines,
and reporting the middleware's own failures once.

Reading an ID is ``corrtrace.ids.IdReader.read`` (one rule for ASGI bytes, WSGI text and Lambda payloads);
what is here decides where the raw value comes from and what is written about the request afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, AnyStr

from corrtrace.context import mark_logged
from corrtrace.ids import IdPolicy, IdReader, allowed_bytes, new_uuid4_hex, new_uuid7

if TYPE_CHECKING:
    import logging

    from .settings import CorrelationSettings

INTERNAL_LOGGER = "corrtrace.middleware"
_INFO, _WARNING, _ERROR = 20, 30, 40  # logging's levels, without importing logging on a Lambda cold start


class ErrorGuard:
    """Log each kind of internal failure once (with its stack), count the rest: the request always goes on."""

    __slots__ = ("_seen", "count")

    def __init__(self) -> None:
        self.count = 0
        self._seen: set[tuple[str, type[BaseException]]] = set()

    def report(self, stage: str, exc: BaseException) -> None:
        self.count += 1
        key = (stage, type(exc))
        if key in self._seen:
            return
        self._seen.add(key)
        try:
            import logging  # imported when first needed: the Lambda cold start does not pay for it

            logging.getLogger(INTERNAL_LOGGER).error(
                "corrtrace middleware failed in %s; the request goes on without it (logged once per kind)",
                stage,
                exc_info=exc,
                extra={"event.dataset": "corrtrace.middleware", "event.action": stage, "event.outcome": "failure"},
            )
        except Exception:
            pass


def guarded_reader(policy: IdPolicy) -> IdReader:
    """A reader whose failing generator is logged once and replaced by a random hex ID (never breaks a request)."""
    return IdReader(policy, on_error=ErrorGuard().report)


def lambda_logger() -> Any:
    """The ``corrtrace.lambda`` logger, importing ``logging`` only when a line is actually written."""
    import logging

    return logging.getLogger("corrtrace.lambda")


PATH_LIMIT = 2048  # characters of a URL path an access line keeps


def cap(text: str, limit: int = PATH_LIMIT) -> str:
    """Shorten an untrusted but JSON-escaped value (a URL path) so one request cannot flood the log."""
    return text if len(text) <= limit else text[:limit] + "…"


def skip_rules(entries: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """``skip_paths`` compiled once into ``(exact, prefixes)``: an entry matches itself and every path under it
    (``/metrics`` matches ``/metrics`` and ``/metrics/x``, not ``/metricsx``); an entry ending in ``*`` is a plain
    prefix. A path is skipped when ``path in exact or path.startswith(prefixes)`` (two C calls per request)."""
    exact, prefixes = set(), []
    for entry in entries:
        if entry.endswith("*"):
            prefixes.append(entry[:-1])
        else:
            exact.add(entry)
            prefixes.append(entry.rstrip("/") + "/")
    return frozenset(exact), tuple(prefixes)


class HeaderForms:
    """How the ID header and the two CORS headers are spelled in one protocol: ASGI carries lower-case bytes,
    WSGI text in any case. One set of forms per middleware, built once."""

    __slots__ = (
        "allow_origin",
        "comma",
        "display",
        "emit",
        "expose",
        "expose_emit",
        "lengths",
        "own",
        "sep",
        "special",
        "star",
    )

    def __init__(self, header_name: str, *, binary: bool) -> None:
        def form(text: str) -> Any:
            return text.encode("latin-1") if binary else text

        self.own = form(header_name.lower())  # for comparing
        self.display = form(header_name)  # as listed in Access-Control-Expose-Headers
        self.emit = self.own if binary else self.display  # as added to the response
        self.expose = form("access-control-expose-headers")
        self.expose_emit = self.expose if binary else form("Access-Control-Expose-Headers")
        self.allow_origin = form("access-control-allow-origin")
        self.comma, self.sep, self.star = form(","), form(", "), form("*")
        self.special = frozenset({self.own, self.expose, self.allow_origin})
        self.lengths = frozenset(len(name) for name in self.special)


def with_id_header(
    headers: Iterable[tuple[AnyStr, AnyStr]], value: AnyStr, forms: HeaderForms, expose: bool
) -> list[tuple[AnyStr, AnyStr]]:
    """A copy of the response ``headers`` plus the ID; a header the app set itself is kept, and the CORS expose
    list is appended to (never overwritten) or added to a CORS response that has none."""
    if headers.__class__ is not list and headers.__class__ is not tuple:  # ASGI allows any iterable: read it once
        headers = list(headers)
    for name, _value in headers:  # the common response names none of the three: one copy with the ID appended
        if len(name) in forms.lengths and name.lower() in forms.special:
            return _with_id_careful(list(headers), value, forms, expose)
    # one list display, cheaper than list() then append(); mypy misreads a starred AnyStr iterable here
    return [*headers, (forms.emit, value)]  # type: ignore[list-item]


def _with_id_careful(
    out: list[tuple[AnyStr, AnyStr]], value: AnyStr, forms: HeaderForms, expose: bool
) -> list[tuple[AnyStr, AnyStr]]:
    expose_at = -1
    cors = False
    for i, (name, _value) in enumerate(out):
        low = name.lower()
        if low == forms.own:
            return out  # the app set it itself: keep its value
        if low == forms.expose:
            expose_at = i
        elif low == forms.allow_origin:
            cors = True
    out.append((forms.emit, value))
    if expose:
        if expose_at >= 0:
            name, listed = out[expose_at]
            names = [v.strip().lower() for v in listed.split(forms.comma)]
            if forms.own not in names and forms.star not in names:
                out[expose_at] = (name, listed + forms.sep + forms.display if listed.strip() else forms.display)
        elif cors:
            out.append((forms.expose_emit, forms.display))
    return out


class HttpMiddleware:
    """What both HTTP adapters (ASGI and WSGI) derive from the settings the same way."""

    __slots__ = (
        "_echo",
        "_expose",
        "_log",
        "_log_only",
        "_observed",
        "_plain_ids",
        "_reader",
        "_rewrite",
        "_skip_exact",
        "_skip_prefixes",
        "_tracer",
        "app",
        "errors",
        "settings",
    )

    def __init__(self, app: Any, settings: CorrelationSettings) -> None:
        import logging

        self.app = app
        self.settings = s = settings
        self.errors = ErrorGuard()
        self._reader = guarded_reader(s.policy)
        self._echo = s.echo_header
        self._expose = s.expose_header
        self._rewrite = s.update_request_header
        self._skip_exact, self._skip_prefixes = skip_rules(s.skip_paths)
        self._log: logging.Logger | None = logging.getLogger(s.access_logger) if s.access_log else None
        self._tracer: Any = otel_helper("HttpTracer", s) if s.tracing else None
        self._observed = self._log is not None or self._tracer is not None  # else no per-request observer work
        # only the access line observes, on every path: its level is checked when the line is written
        self._log_only = self._log is not None and self._tracer is None and not self._skip_prefixes
        self._plain_ids = plain_ids(s.policy)  # the access line takes the ID's ASCII bytes as they are

    def _observers(self, path: str) -> tuple[logging.Logger | None, Any]:
        """The access logger and the tracer for a request to ``path``: None for what is off, or for both on a
        skipped path (no access line, no span; the ID is still read, bound and echoed)."""
        log, tracer = self._log, self._tracer
        if not self._observed:
            return _NOTHING  # nothing to observe, so nothing to skip
        if self._skip_prefixes and (path in self._skip_exact or path.startswith(self._skip_prefixes)):
            return _NOTHING
        if log is not None and not log.isEnabledFor(_ERROR):  # a 5xx line is ERROR: only a logger off for it is off
            log = None
        return log, tracer


_NOTHING: tuple[Any, Any] = (None, None)  # no access logger, no tracer


def otel_helper(name: str, settings: CorrelationSettings) -> Any:
    """An OpenTelemetry helper of ``otel.py`` (``HttpTracer``, ``RecordTracer``), imported only when
    ``tracing=True`` asks for it."""
    try:
        from . import otel
    except ImportError as exc:
        raise ImportError(
            f"tracing=True needs OpenTelemetry ({exc.name} is missing): pip install 'corrtrace[otel]'"
        ) from exc
    return getattr(otel, name)(settings)


def log_access(
    log: logging.Logger,
    cid: str,
    method: str,
    path: str,
    status: int,
    error: BaseException | None,
    start: int,
    client: str | None,
    rejected: str | None,
    plain_id: bytes | None = None,
) -> None:
    """Write the ``corrtrace.access`` line (same fields for ASGI and WSGI); ``path`` is capped here. ``plain_id``:
    the ID's bytes when they need no JSON escaping (``plain_ids``), so the line skips escaping it.

    The line is one bytes template filled in one ``%`` (each string escaped by orjson) and written directly to
    ``configure``'s handler (``corrtrace.logging.DirectLine``); any other destination gets it through
    ``emit_json`` (a ``LogRecord``), with the same fields.
    """
    # The level: ERROR for a 5xx, WARNING for a 4xx, INFO otherwise, so a level filter finds failed requests. A 500
    # from an unhandled exception is WARNING: its ERROR line is the exception's own (with the stack), logged once.
    if error is not None:
        level = _WARNING
    elif status < 400:
        level = _INFO
    else:
        level = _ERROR if status >= 500 else _WARNING
    if not log.isEnabledFor(level):
        return
    duration = _perf_ns() - start
    if len(path) > PATH_LIMIT:  # the call only when it shortens
        path = cap(path)
    escaped = _PATHS.get(path) or _escaped_path(path)
    client_member = (_CLIENTS.get(client) or _client_member(client)) if client else b""
    route = _access_route(log, level)
    if route is not None:
        write, template, stamp, trace, partials = route
        cid_json = plain_id or _dumps(cid)[1:-1]
        try:
            if error is None and rejected is None and not trace:  # the common line: 6 values, not 12
                line = partials.get((method, status)) or _partial(partials, template, method, status)
                write(line % (stamp, escaped, cid_json, duration, escaped, client_member))
                return
            quoted, code, outcome, extra = _access_fields(method, status, error, rejected)
            write(
                template
                % (
                    stamp,
                    quoted,
                    escaped,
                    code,
                    cid_json,
                    trace,
                    b"%d" % duration,
                    outcome,
                    quoted,
                    code,
                    escaped,
                    client_member + extra,
                )
            )
            return
        except Exception:  # let logging's own path write it or report the failure (handleError)
            pass
    quoted, code, outcome, extra = _access_fields(method, status, error, rejected)
    members = _ACCESS_MEMBERS % (b"%d" % duration, outcome, quoted, code, escaped, client_member + extra)
    _emit_json(log, level, f"{method} {path} {status}", cid, members)


def _access_fields(
    method: str, status: int, error: BaseException | None, rejected: str | None
) -> tuple[bytes, bytes, bytes, bytes]:
    """The access line's method (JSON-escaped, without quotes), status digits, ``event.outcome`` and the optional
    members after the client's (the rejected ID's excerpt, the error's type)."""
    quoted = _METHODS.get(method) or _dumps(method)[1:-1]
    code = _STATUSES.get(status) or b"%d" % status
    extra = b""
    if rejected is not None:
        extra += b',"labels":{"rejected_correlation_id":' + _dumps(rejected) + b"}"
    if error is not None:
        extra += b',"error":{"type":' + _dumps(type(error).__name__) + b"}"
    outcome = b"failure" if error is not None or status >= 500 else b"success"
    return quoted, code, outcome, extra


def _partial(partials: dict[Any, bytes], template: bytes, method: str, status: int) -> bytes:
    """The route's ``template`` with what every line of one method and status shares filled in (method, status,
    outcome; no trace, no error, no rejected ID), kept in ``partials`` (bounded): a template of the 6 values that
    change per line, in order the timestamp, the path, the ID, the duration (``%d``), the path, the client member.
    The open values are marked with NUL bytes while the others are filled, then every ``%`` is escaped and the
    marks become ``%`` (a JSON template never holds a raw NUL: orjson escapes it)."""
    quoted, code, outcome, _ = _access_fields(method, status, None, None)
    s, d = b"\0s", b"\0d"
    line = template % (s, quoted, s, code, s, b"", d, outcome, quoted, code, s, s)
    line = line.replace(b"%", b"%%").replace(b"\0", b"%")
    if len(partials) >= 256:  # bounded: methods and statuses come from clients and apps
        partials.clear()
    partials[(method, status)] = line
    return line


# The access line's message and own fields as templates: the method and path are filled in JSON-escaped (orjson,
# without the quotes), the duration and the status as digits, the last value is the optional members (client,
# rejected ID label, error type) or nothing.
_ACCESS_MESSAGE = b'"%s %s %s"'
_ACCESS_MEMBERS = (
    b'"event":{"dataset":"corrtrace.access","duration":%s,"outcome":"%s"},'
    b'"http":{"request":{"method":"%s"},"response":{"status_code":%s}},"url":{"path":"%s"}%s'
)
_METHODS = {m: m.encode() for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WEBSOCKET")}
_STATUSES = {code: b"%d" % code for code in range(100, 600)}  # a status as the line writes it
_CLIENTS: dict[str, bytes] = {}  # client address -> its member, for the addresses seen lately (bounded)
_PATHS: dict[str, bytes] = {}  # URL path -> JSON-escaped, for the short paths seen lately (bounded: 1024 x 128)
_PATH_CACHED = 128  # characters of the longest path kept
_perf_ns = time.perf_counter_ns


def _escaped_path(path: str) -> bytes:
    """``path`` JSON-escaped (orjson, without the quotes); a short one is kept for the next request to it."""
    escaped = _dumps(path)[1:-1]
    if len(path) <= _PATH_CACHED:
        if len(_PATHS) >= 1024:
            _PATHS.clear()
        _PATHS[path] = escaped
    return escaped


def _client_member(client: str) -> bytes:
    member = b',"client":{"address":' + _dumps(client) + b"}"
    if len(_CLIENTS) >= 1024:
        _CLIENTS.clear()
    _CLIENTS[client] = member
    return member


def plain_ids(policy: IdPolicy) -> bool:
    """Whether every ID a middleware with ``policy`` runs under needs no JSON escaping: generated by the core's
    generators (or their fallback) and, when accepted from a header, made of printable ASCII other than ``"``
    and ``\\`` (the policy's pattern a class of such bytes, as the default one)."""
    allowed = allowed_bytes(policy.allowed_pattern)
    return (
        policy.generator in (new_uuid7, new_uuid4_hex)
        and allowed is not None
        and all(0x20 <= b < 0x7F and b not in b'"\\' for b in allowed)
    )


def _first_dumps(value: Any) -> bytes:
    """``orjson.dumps``, imported on the first access line (a Lambda cold start never needs it; an import
    statement per line would cost more than the rest of the line), then called directly."""
    global _dumps
    import orjson

    _dumps = orjson.dumps
    return orjson.dumps(value)


def _first_emit_json(*args: Any) -> None:
    """``corrtrace.logging.emit_json``, imported on the first access line as ``_first_dumps`` is."""
    global _emit_json
    from corrtrace.logging import emit_json

    _emit_json = emit_json
    emit_json(*args)


def _first_access_route(*args: Any) -> Any:
    """The access line's ``corrtrace.logging.DirectLine.route``, made on the first access line."""
    global _access_route
    from corrtrace.logging import DirectLine

    _access_route = DirectLine(_ACCESS_MESSAGE, _ACCESS_MEMBERS).route
    return _access_route(*args)


_dumps: Callable[[Any], bytes] = _first_dumps
_emit_json: Callable[..., None] = _first_emit_json
_access_route: Callable[..., Any] = _first_access_route


def log_unhandled(exc: BaseException, cid: str, protocol: str) -> None:
    """Log an exception that escaped the app, once, at ERROR with the ID and the stack, and mark it so the
    server's own "Exception in ASGI application" line can be dropped (``corrtrace.logging.configure``)."""
    import logging

    logging.getLogger(INTERNAL_LOGGER).error(
        "unhandled exception in the %s app", protocol, exc_info=exc, extra={"correlation_id": cid}
    )
    mark_logged(exc)


def status_code(status: Any) -> int:
    """The numeric status of an ASGI status (int) or a WSGI status line (``"404 Not Found"``); 0 if unknown. A
    status line is parsed once and its code kept (bounded, as the paths are)."""
    if type(status) is int:
        return status
    if type(status) is str:
        code = _STATUS_LINES.get(status)
        if code is not None:
            return code
    try:
        code = int(str(status)[:3]) if status else 0
    except ValueError:
        return 0
    if type(status) is str:
        if len(_STATUS_LINES) >= 1024:
            _STATUS_LINES.clear()
        _STATUS_LINES[status] = code
    return code


_STATUS_LINES: dict[str, int] = {}  # WSGI status line -> its code, for the lines seen lately (bounded)
