"""Structured JSON log lines with ECS field names and the correlation ID of the current request.

One call, ``configure(service=...)``, installs a handler whose formatter writes one JSON object per line. The
line's shape is the contract every other part of corrtrace reads (see the README's log-event section).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import IO, Any

import orjson

from corrtrace.context import get_correlation_id, get_log_fields, was_logged

ECS_VERSION = "8.11.0"
_time_ns = time.time_ns
TraceContextProvider = Callable[[], "tuple[str, str] | None"]

_trace_context_provider: TraceContextProvider | None = None

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "correlation_id",
    "taskName",
}


def set_trace_context_provider(provider: TraceContextProvider | None) -> None:
    """Let tracing (the otel module) supply ``(trace_id, span_id)`` for each line; None switches it off."""
    global _trace_context_provider
    _trace_context_provider = provider


def current_trace_context() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` when tracing is on (the otel module installed a provider), else None."""
    provider = _trace_context_provider
    return provider() if provider is not None else None


def trace_member() -> bytes:
    """The ``"trace"`` and ``"span"`` members of a direct line (with their leading comma), or ``b""``."""
    provider = _trace_context_provider
    if provider is None:
        return b""
    trace = provider()
    if not trace:
        return b""
    return b',"trace":{"id":%s},"span":{"id":%s}' % (orjson.dumps(trace[0]), orjson.dumps(trace[1]))


def _default(obj: Any) -> Any:
    return repr(obj)


def _sanitise(value: Any) -> Any:
    """Make ``value`` serialisable for orjson: mapping keys become strings, odd values their ``repr``."""
    if isinstance(value, Mapping):
        return {str(k): _sanitise(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_sanitise(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 63:
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def format_event(event: Mapping[str, Any]) -> bytes:
    """Serialise one event to a JSON line (without the newline); never raises for odd values."""
    try:
        return orjson.dumps(event, default=_default)
    except TypeError:
        return orjson.dumps(_sanitise(event), default=_default)


def parse_line(line: bytes | str) -> dict[str, Any]:
    """Parse a JSON log line; a line that is not a JSON object is kept as ``message`` + ``log.original``."""
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    return wrap_text(line.decode("utf-8", "replace") if isinstance(line, bytes) else line)


def wrap_text(text: str) -> dict[str, Any]:
    """The event of a line no reader understood: the text (without its line break) as ``message``, and as read in
    ``log.original`` (ECS), so it is stored and shown, never dropped. The collector wraps such lines the same way."""
    text = text.rstrip("\r\n")
    return {"message": text, "log": {"original": text}}


def _put(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` as nested objects, merging with (a copy of) what is there: shared dicts stay untouched."""
    *parents, leaf = dotted.split(".")
    node = target
    for part in parents:
        child = node.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        node[part] = child
        node = child
    node[leaf] = value


def _merge(target: dict[str, Any], fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        existing = target.get(key)
        if isinstance(value, Mapping) and isinstance(existing, dict):
            existing = target[key] = dict(existing)
            _merge(existing, value)
        elif "." in key:
            _put(target, key, value)
        else:
            target[key] = value


_FRACTIONS = tuple(f".{i:03d}Z" for i in range(1000))  # a millisecond's part of a timestamp, formatted once


class _Clock:
    """RFC 3339 UTC timestamps with milliseconds, cached per millisecond and per second. Each cache is one tuple
    replaced whole, so a thread never reads one millisecond's number with another's text."""

    __slots__ = ("_now", "_second")

    def __init__(self) -> None:
        self._now: tuple[int, int, int, str, bytes] = (-1, 0, 0, "", b"")  # millis, [start, end) in ns, text, bytes
        self._second: tuple[int, str] = (-1, "")

    def format(self, created: float) -> str:
        millis = int(created * 1000)
        now = self._now
        return now[3] if now[0] == millis else self.tick(millis)[3]

    def now_bytes(self) -> bytes:
        """Now as ASCII bytes (a direct line's head): the clock compared with the current millisecond's bounds,
        no division per line."""
        ns = _time_ns()
        now = self._now
        return now[4] if now[1] <= ns < now[2] else self.tick(ns // 1_000_000)[4]

    def tick(self, millis: int) -> tuple[int, int, int, str, bytes]:
        """The cache for ``millis`` (milliseconds since the epoch)."""
        second, fraction = divmod(millis, 1000)
        prefix = self._second
        if prefix[0] != second:
            prefix = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        text = prefix[1] + _FRACTIONS[fraction]
        now = self._now = (millis, millis * 1_000_000, (millis + 1) * 1_000_000, text, text.encode("ascii"))
        return now


# Attributes ``LogRecord.__init__`` sets; ``extra=`` keys and filters' additions come after them in ``__dict__``.
_INIT_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
# Top-level keys whose objects the formatter builds itself; a dynamic field under one of them is merged.
_OWN_ROOTS = frozenset({"@timestamp", "message", "correlation_id", "log", "service", "host", "process", "ecs"})


def _extras(attrs: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``extra=`` fields of a record: scanned from the end of its ``__dict__`` until a standard attribute."""
    found = []
    for key in reversed(attrs):
        if key in _INIT_ATTRS:
            break
        if key not in _RECORD_ATTRS and key[0] != "_":
            found.append((key, attrs[key]))
    found.reverse()
    return found


class JsonFormatter(logging.Formatter):
    """Format a ``LogRecord`` as one ECS JSON line carrying the correlation ID.

    The fields that never change (service, host, process, ECS version) are serialised once and appended to
    each line, so the per-record work is the few fields that do change.
    """

    def __init__(
        self,
        service: str | None = None,
        *,
        version: str | None = None,
        environment: str | None = None,
        static_fields: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        service_fields = {"name": service, "version": version, "environment": environment}
        static: dict[str, Any] = {
            "service": {k: v for k, v in service_fields.items() if v is not None},
            "host": {"name": socket.gethostname()},
            "process": {"pid": os.getpid()},
            "ecs": {"version": ECS_VERSION},
        }
        _merge(static, static_fields or {})
        self._static = static
        self._static_tail = b"," + orjson.dumps(static)[1:]
        self._static_end = self._static_tail + b"\n"
        self._log_members: dict[tuple[int, str], bytes] = {}
        self._clock = _Clock()

    def _head(
        self,
        created: float,
        message: str,
        cid: str | None,
        level: str,
        logger: str,
        trace: tuple[str, str] | None,
    ) -> dict[str, Any]:
        """The fields every record's line starts with, in order (``members_line`` writes the same head as bytes;
        tests/core/test_logging.py holds the two equal)."""
        event: dict[str, Any] = {
            "@timestamp": self._clock.format(created),
            "message": message,
            "correlation_id": cid or get_correlation_id(),
            "log": {"level": level, "logger": logger},
        }
        if trace is None and _trace_context_provider is not None:
            trace = _trace_context_provider()
        if trace:
            event["trace"] = {"id": trace[0]}
            event["span"] = {"id": trace[1]}
        return event

    def _base(self, record: logging.LogRecord) -> dict[str, Any]:
        attrs = record.__dict__
        message = record.msg if not record.args and isinstance(record.msg, str) else record.getMessage()
        event = self._head(
            record.created,
            message,
            attrs.get("correlation_id"),
            record.levelname,
            record.name,
            attrs.get("_corrtrace_trace"),
        )
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            event["error"] = {
                "type": exc_type.__name__,
                "message": str(exc),
                "stack_trace": self.formatException(record.exc_info),
            }
        elif record.exc_text:
            event["error"] = {"stack_trace": record.exc_text}
        return event

    def members_line(self, level: int, logger: str, message: str, cid: str | None, members: bytes) -> bytes:
        """The line (UTF-8, newline included) ``format`` writes for a record logged now whose ``extra=`` fields
        are the JSON object members ``members`` (``"url":{"path":"/"},...``; roots not the formatter's own), with
        no exception and no bound fields: the direct path of ``emit_json``. The head is cached bytes and the
        variable strings go through orjson, so every value is escaped as the record path escapes it."""
        dumps = orjson.dumps
        log_member = self._log_members.get((level, logger))
        if log_member is None:
            log_member = self._log_member(level, logger)
        return b'{"@timestamp":"%s","message":%s,"correlation_id":%s,%s%s%s%s%s' % (
            _CLOCK.now_bytes(),
            dumps(message),
            dumps(cid or get_correlation_id()),
            log_member,
            trace_member(),
            b"," if members else b"",
            members,
            self._static_end,
        )

    def line_template(self, level: int, logger: str, message: bytes, members: bytes) -> bytes:
        """A bytes ``%`` template of the line ``members_line`` writes, for a caller that fills the whole line in one
        ``%`` (``DirectLine``). Its values, in order: the timestamp, the values of ``message`` (a template of the
        message as a JSON string), the ID JSON-escaped (without quotes), the trace member (``trace_member``), the
        values of ``members`` (a template of JSON object members)."""
        log_member = self._log_members.get((level, logger)) or self._log_member(level, logger)
        return (
            b'{"@timestamp":"%s","message":'
            + message
            + b',"correlation_id":"%s",'
            + log_member.replace(b"%", b"%%")
            + b"%s,"
            + members
            + self._static_end.replace(b"%", b"%%")
        )

    def _log_member(self, level: int, logger: str) -> bytes:
        member = b'"log":' + orjson.dumps({"level": logging.getLevelName(level), "logger": logger})
        if len(self._log_members) < 256:  # bounded: one entry per logger and level that writes direct lines
            self._log_members[(level, logger)] = member
        return member

    def _dynamic(self, record: logging.LogRecord) -> tuple[Mapping[str, Any] | None, list[tuple[str, Any]]]:
        return record.__dict__.get("_corrtrace_fields") or get_log_fields(), _extras(record.__dict__)

    def to_event(self, record: logging.LogRecord) -> dict[str, Any]:
        """Build the whole event dict for ``record`` (for handlers that ship dicts, not text)."""
        event = self._base(record)
        _merge(event, self._static)
        bound, extras = self._dynamic(record)
        if bound:
            _merge(event, bound)
        _merge_extras(event, extras)
        return event

    def format(self, record: logging.LogRecord) -> str:
        event = self._base(record)
        attrs = record.__dict__
        bound = attrs.get("_corrtrace_fields") or get_log_fields()
        if bound:
            if not _OWN_ROOTS.isdisjoint(bound):
                return format_event(self.to_event(record)).decode()
            _merge(event, bound)
        for key in reversed(attrs):  # the extras, in one pass from the end
            if key in _INIT_ATTRS:
                break
            if key in _RECORD_ATTRS or key[0] == "_":
                continue
            value = attrs[key]
            if "." in key:
                if key.partition(".")[0] in _OWN_ROOTS:
                    return format_event(self.to_event(record)).decode()
                _put(event, key, value)
            elif key in _OWN_ROOTS:
                return format_event(self.to_event(record)).decode()
            elif type(value) is dict and isinstance(event.get(key), dict):
                event[key] = {**event[key], **value}
            else:
                event[key] = value
        return (format_event(event)[:-1] + self._static_tail).decode()


def _merge_extras(event: dict[str, Any], extras: list[tuple[str, Any]]) -> None:
    for key, value in extras:
        if "." in key:
            _put(event, key, value)
        elif type(value) is dict and isinstance(event.get(key), dict):
            event[key] = {**event[key], **value}
        else:
            event[key] = value


class CorrelationFilter(logging.Filter):
    """Stamp each record with the correlation ID (and bound fields) of the thread that logged it.

    Needed when formatting happens elsewhere (a ``QueueHandler`` or the collector's background shipper): the
    context of the logging call is captured here, at emit time.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        if "correlation_id" not in attrs:
            attrs["correlation_id"] = get_correlation_id()
        fields = get_log_fields()
        if fields:
            attrs["_corrtrace_fields"] = fields
        if _trace_context_provider is not None:
            attrs["_corrtrace_trace"] = _trace_context_provider()
        return True


def _trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span when tracing is on, else None."""
    provider = _trace_context_provider
    return provider() if provider is not None else None


class CorrelationIdFilter(logging.Filter):
    """For a stdlib setup that keeps its own formatter: puts ``correlation_id`` (and ``trace_id``/``span_id``)
    on every record, so ``%(correlation_id)s`` works in any format string (see middleware/README.md).

    ``default`` fills the attributes outside a request, so a format string never fails on a missing key.
    """

    def __init__(self, name: str = "", *, default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        if not attrs.get("correlation_id"):
            attrs["correlation_id"] = get_correlation_id() or self.default
        trace = _trace_ids()
        attrs["trace_id"], attrs["span_id"] = trace or (self.default, self.default)
        return True


def add_correlation_id(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``correlation_id`` (and ECS ``trace.id``/``span.id`` when tracing) on the event.

    A value the caller bound explicitly wins; outside a request the event is left as it is.
    """
    correlation_id = get_correlation_id()
    if correlation_id is not None:
        event_dict.setdefault("correlation_id", correlation_id)
    trace = _trace_ids()
    if trace:
        event_dict.setdefault("trace", {"id": trace[0]})
        event_dict.setdefault("span", {"id": trace[1]})
    return event_dict


def loguru_patcher(record: Mapping[str, Any]) -> None:
    """loguru patcher (``logger.configure(patcher=loguru_patcher)``): the same fields in ``record["extra"]``.

    ``correlation_id`` is always present (None outside a request), so ``{extra[correlation_id]}`` never fails.
    """
    extra = record["extra"]
    if extra.get("correlation_id") is None:
        extra["correlation_id"] = get_correlation_id()
    trace = _trace_ids()
    if trace:
        extra.setdefault("trace", {"id": trace[0]})
        extra.setdefault("span", {"id": trace[1]})


class JsonStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """``logging.StreamHandler`` that also takes a formatted line directly (``write_bytes``, for ``emit_json``)."""

    def write_line(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(line + self.terminator)
            self.flush()

    def write_bytes(self, data: bytes) -> None:
        """Write one UTF-8 line that already ends with its newline."""
        self.write_line(data[:-1].decode())


class JsonFileHandler(logging.Handler):
    """Appends JSON lines to ``path``: one ``os.write`` per line on an ``O_APPEND`` descriptor, no buffer.

    Each line is in the kernel before the logging call returns, so a SIGKILL loses no line and processes sharing
    the file (gunicorn workers) never interleave parts of lines. Rotation by rename or deletion (logrotate without
    ``copytruncate``) is noticed by a ``stat`` of ``path`` at most every ``check_interval`` seconds, not on every
    line as ``WatchedFileHandler`` does; until then lines go on into the renamed file, which the collector still
    reads to its end (collector/README.md, rotation). ``copytruncate`` needs no reopen: appends follow the end.
    """

    terminator = "\n"

    def __init__(self, path: str | os.PathLike[str], check_interval: float = 1.0) -> None:
        super().__init__()
        self.path = os.path.abspath(os.fspath(path))
        self.check_interval = check_interval
        self._fd = -1
        self._file_id = (0, 0)
        self._next_check = 0.0
        with self.lock:  # type: ignore[union-attr]
            self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(fd)
        self._fd, self._file_id = fd, (st.st_dev, st.st_ino)
        self._next_check = time.monotonic() + self.check_interval

    def _reopen_if_moved(self) -> None:
        try:
            st = os.stat(self.path)
            moved = (st.st_dev, st.st_ino) != self._file_id
        except FileNotFoundError:
            moved = True
        if moved:
            old = self._fd
            self._open()
            os.close(old)
        else:
            self._next_check = time.monotonic() + self.check_interval

    def write_line(self, line: str) -> None:
        self.write_bytes((line + self.terminator).encode("utf-8"))

    def write_bytes(self, data: bytes) -> None:
        """Append one UTF-8 line that already ends with its newline (one ``os.write``)."""
        lock = self.lock
        lock.acquire()  # type: ignore[union-attr]  # not ``with``: half the cost, on every line
        try:
            if self._fd < 0:  # closed (a reconfigure, a test): reopen, as logging.FileHandler does
                self._open()
            elif _monotonic() >= self._next_check:
                self._reopen_if_moved()
            written = _write(self._fd, data)
            while written < len(data):  # a short write (nearly full disk): the rest, or the OSError
                data = data[written:]
                written = _write(self._fd, data)
        finally:
            lock.release()  # type: ignore[union-attr]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        super().close()

    def __repr__(self) -> str:
        return f"<JsonFileHandler {self.path} ({logging.getLevelName(self.level)})>"


_monotonic = time.monotonic
_write = os.write
_LINE_HANDLERS = (JsonStreamHandler, JsonFileHandler)
_DIRECT_FILTERS: frozenset[type] = frozenset()  # set below, once the filter classes exist


def _direct_walk(
    logger: logging.Logger, level: int
) -> tuple[JsonStreamHandler | JsonFileHandler, _Chain, _Skipped] | None:
    """The handler a line at ``level`` from ``logger`` reaches when it is the only one and corrtrace's own
    (``configure``'s: a ``JsonFormatter``, only corrtrace's filters), and what the walk read to find it (each
    logger on the way: its handlers, ``propagate`` and parent; the handlers above ``level`` with their levels),
    else None. Walked as ``Logger.callHandlers`` does."""
    if logger.filters:
        return None
    found: Any = None
    chain = []
    skipped = []
    node: logging.Logger | None = logger
    while node is not None:
        handlers = node.handlers
        if handlers:  # most loggers on the way up have none: no iterator for them
            for handler in handlers:
                if level >= handler.level:
                    if found is not None or type(handler) not in _LINE_HANDLERS:
                        return None
                    found = handler
                else:
                    skipped.append((handler, handler.level))
        chain.append((node, list(handlers), node.propagate, node.parent))
        if not node.propagate:
            break
        node = node.parent
    if found is None or type(found.formatter) is not JsonFormatter:
        return None
    for f in found.filters:
        if type(f) not in _DIRECT_FILTERS:
            return None
    return found, tuple(chain), tuple(skipped)


# What ``_direct_walk`` read on each logger: (logger, a copy of its handlers, its propagate, its parent); and the
# handlers it passed over for their level, with that level.
_Chain = tuple[tuple[logging.Logger, list[logging.Handler], bool, "logging.Logger | None"], ...]
_Skipped = tuple[tuple[logging.Handler, int], ...]


def _direct_handler(logger: logging.Logger, level: int) -> JsonStreamHandler | JsonFileHandler | None:
    """``_direct_walk``'s handler: walked per line, so a handler added or removed later is seen at once."""
    walked = _direct_walk(logger, level)
    return walked[0] if walked is not None else None


_CLOCK = _Clock()  # the direct lines' timestamps


class _Route:
    """Where a direct line from one logger at one level went (``DirectLine.route``), and everything the handler
    walk read to decide it, compared per line instead of walking again (``current``; the cost of each in
    middleware/README.md, "Under a real server")."""

    __slots__ = (
        "filters",
        "formatter",
        "handler",
        "handler_level",
        "handlers",
        "parent",
        "partials",
        "propagate",
        "rest",
        "skipped",
        "template",
        "write",
    )

    def __init__(
        self, handler: JsonStreamHandler | JsonFileHandler, chain: _Chain, skipped: _Skipped, template: bytes
    ) -> None:
        (_, self.handlers, self.propagate, self.parent), *rest = chain  # the logger's own, then its ancestors'
        self.rest = tuple(rest)
        self.handler, self.skipped, self.template = handler, skipped, template
        self.handler_level = handler.level
        self.formatter = handler.formatter
        self.filters = list(handler.filters)
        self.write = handler.write_bytes
        self.partials: dict[Any, bytes] = {}  # the caller's templates derived from ``template`` (DirectLine.route)

    def current(self, logger: logging.Logger) -> bool:
        """Whether a walk from ``logger`` now would find the same handler by the same way: every logger's handlers
        (compared item by item, by identity), ``propagate`` and parent, the levels of the handlers it passed over,
        the handler's level, formatter and filters, as they were (``logger``'s filters are the caller's check).
        The logger itself is read apart from its ancestors: a logger and the root logger are two classes, and an
        attribute read that always meets one class is specialised by the interpreter (~1.5x cheaper)."""
        if logger.handlers != self.handlers or logger.propagate != self.propagate or logger.parent is not self.parent:
            return False
        for node, handlers, propagate, parent in self.rest:  # usually the root logger alone
            if node.handlers != handlers or node.propagate != propagate or node.parent is not parent:
                return False
        for other, other_level in self.skipped:  # usually none
            if other.level != other_level:
                return False
        handler = self.handler
        return (
            handler.level == self.handler_level
            and handler.formatter is self.formatter
            and handler.filters == self.filters
        )


class DirectLine:
    """A kind of line its caller builds as JSON itself (the access line, ``middleware/_core.py``): the message and
    the members as bytes ``%`` templates, and per logger and level the whole line's template (``line_template``
    of the formatter the line goes to)."""

    __slots__ = ("_routes", "members", "message")

    def __init__(self, message: bytes, members: bytes) -> None:
        self.message, self.members = message, members
        self._routes: dict[logging.Logger, dict[int, _Route]] = {}

    def route(
        self, logger: logging.Logger, level: int
    ) -> tuple[Callable[[bytes], None], bytes, bytes, bytes, dict[Any, bytes]] | None:
        """Where this line from ``logger`` at ``level`` goes when ``configure``'s handler is its only destination
        (see ``emit_json``) and no fields are bound: ``(write, template, timestamp, trace, partials)``, else None.
        The caller fills ``template`` in one ``%`` (see ``JsonFormatter.line_template``) and passes the line to
        ``write``; it checked ``logger.isEnabledFor(level)``. ``partials``: a dict for the caller's own templates
        derived from ``template`` (it bounds it), dropped with the route.

        The handler walk is done once per logger and level and its result kept with what it read; each line
        compares that (``_Route.current``) rather than walking again, so a handler, filter, level or formatter
        changed later is still seen at once."""
        if logger.filters or get_log_fields():
            return None
        levels = self._routes.get(logger)
        found = levels.get(level) if levels is not None else None
        if found is None or not found.current(logger):
            walked = _direct_walk(logger, level)
            if walked is None:
                return None
            handler, chain, skipped = walked
            formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]
            template = formatter.line_template(level, logger.name, self.message, self.members)
            found = _Route(handler, chain, skipped, template)
            if levels is None and len(self._routes) < 256:  # bounded: the loggers writing such lines
                levels = self._routes[logger] = {}
            if levels is not None:
                levels[level] = found
        trace = trace_member() if _trace_context_provider is not None else b""
        return found.write, found.template, _CLOCK.now_bytes(), trace, found.partials


def emit_json(logger: logging.Logger, level: int, message: str, cid: str, members: bytes) -> None:
    """Log ``message`` whose fields are already JSON object members (``"url":{"path":"/"},...``, roots not the
    formatter's own), for a caller that checked ``logger.isEnabledFor(level)`` itself.

    When the line's only destination is a handler ``configure`` installed, the line is written
    directly: no ``LogRecord``, no ``findCaller``, no filter pass (their work, the ID and the trace context, is
    done here), the same line ``JsonFormatter`` writes for the record. Otherwise (other handlers, a logger filter,
    bound fields, a write that fails) the members are parsed back into ``extra=`` fields for an ordinary
    ``logger.log``."""
    handler = _direct_handler(logger, level)
    if handler is not None and not get_log_fields():
        try:
            handler.write_bytes(handler.formatter.members_line(level, logger.name, message, cid, members))  # type: ignore[union-attr]
            return
        except Exception:  # let logging's own path write it or report the failure (handleError)
            pass
    logger.log(level, message, extra={"correlation_id": cid, **orjson.loads(b"{" + members + b"}")})


# The loggers uvicorn and gunicorn write to: ``configure`` and ``server_log_config`` route them to the JSON handler.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


class ServerLogFilter(logging.Filter):
    """Server lines in corrtrace's shape, on the handler before ``CorrelationFilter``.

    Drops a server's second traceback ("Exception in ASGI application", gunicorn's "Error handling request") of
    an exception the middleware already logged under the request's ID; gives gunicorn's access line the ID its
    response carried (gunicorn writes it after the request's context is gone).
    """

    def __init__(self, header_name: str = "X-Correlation-ID") -> None:
        super().__init__()
        self._response_atom = "{" + header_name.lower() + "}o"  # gunicorn's atom for a response header

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and was_logged(record.exc_info[1]):
            return False
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            cid = record.args.get(self._response_atom)
            if isinstance(cid, str) and cid != "-" and not record.__dict__.get("correlation_id"):
                record.correlation_id = cid
        return True


_DIRECT_FILTERS = frozenset({ServerLogFilter, CorrelationFilter})  # a no-op for a direct line, or done by it


def configure(
    service: str,
    *,
    version: str | None = None,
    environment: str | None = None,
    level: int | str = "INFO",
    stream: IO[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    logger: str | logging.Logger | None = None,
    servers: bool = True,
) -> logging.Handler:
    """Send ``logger`` (the root logger by default) to JSON lines on ``stream`` (stdout) or the file ``path``
    (``None`` or ``""``: the stream).

    With the root logger and ``servers`` (the default), uvicorn's and gunicorn's loggers (``SERVER_LOGGERS``)
    write through the same handler, so every line a server process writes is JSON in the same shape; a server
    logger the server switched off before (no handler, not propagated: ``uvicorn --no-access-log``) stays off.
    Calling it again replaces the handler it installed before, so it is safe in tests and reloads.
    """
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
    handler: logging.Handler = (
        JsonFileHandler(path)  # an empty path (``path=os.environ.get("LOG_FILE", "")``) means the stream
        if path is not None and path != ""
        else JsonStreamHandler(stream or sys.stdout)
    )
    handler.setFormatter(JsonFormatter(service, version=version, environment=environment))
    handler.addFilter(ServerLogFilter())
    handler.addFilter(CorrelationFilter())
    handler.set_name("corrtrace")
    for old in [h for h in target.handlers if h.get_name() == "corrtrace"]:
        target.removeHandler(old)
        old.close()
    target.addHandler(handler)
    target.setLevel(level)
    if servers and target is logging.getLogger():
        for name in SERVER_LOGGERS:
            server_logger = logging.getLogger(name)
            if not server_logger.handlers and not server_logger.propagate:
                continue  # switched off by the server (uvicorn --no-access-log): it stays off
            server_logger.handlers = [handler]  # a new list: uvicorn's gunicorn worker shares gunicorn's
            server_logger.propagate = False
    return handler


def server_log_config(
    service: str,
    *,
    version: str | None = None,
    environment: str | None = None,
    level: str = "INFO",
    header_name: str = "X-Correlation-ID",
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict doing what ``configure`` does, for a server to apply at start-up.

    gunicorn: ``logconfig_dict = server_log_config("orders")`` in ``gunicorn.conf.py``; uvicorn:
    ``corrtrace log-config --service orders > log.json`` then ``uvicorn app:app --log-config log.json``.
    """
    formatter: dict[str, Any] = {"()": "corrtrace.logging.JsonFormatter", "service": service}
    if version is not None:
        formatter["version"] = version
    if environment is not None:
        formatter["environment"] = environment
    handler = {
        "class": "corrtrace.logging.JsonStreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": "corrtrace",
        "filters": ["server", "correlation"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"corrtrace": formatter},
        "filters": {
            "server": {"()": "corrtrace.logging.ServerLogFilter", "header_name": header_name},
            "correlation": {"()": "corrtrace.logging.CorrelationFilter"},
        },
        "handlers": {"corrtrace": handler},
        "root": {"level": level, "handlers": ["corrtrace"]},
        "loggers": {name: {"level": level, "handlers": ["corrtrace"], "propagate": False} for name in SERVER_LOGGERS},
    }
