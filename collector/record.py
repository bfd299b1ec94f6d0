"""One log line on its way to the sinks: the raw JSON bytes plus the few fields routing and search need.

The parsed dict is dropped right after routing so a buffered batch costs little more than its raw bytes.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import TYPE_CHECKING, Any

import orjson

from corrtrace.timestamps import MAX_MS, MIN_MS, format_timestamp, parse_timestamp_ms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from corrtrace.collector.parsers import LineFormat
    from corrtrace.collector.sources.base import RawLine

_DAY_MS = 86_400_000
# Added to ``tags`` when ``@timestamp`` was present but unreadable and the ingest time replaced it (Logstash's
# name for the same thing); the line as read is kept in ``event.original``.
TIMESTAMP_FAILURE_TAG = "_dateparsefailure"
_day_cache: dict[int, str] = {}


class LinePiece(bytes):
    """One piece of a line longer than ``max_line_bytes`` (such a line is shipped in pieces, never dropped).
    ``number`` counts from 1; the pieces of one line share ``line``, where the first piece leaves the correlation
    ID it names, so that every piece carries it (collector/README.md, "Lines longer than max_line_bytes")."""

    number: int = 1
    line: dict[str, str]

    @classmethod
    def of(cls, data: bytes, line: dict[str, str], number: int) -> LinePiece:
        piece = cls(data)
        piece.line = line
        piece.number = number
        return piece


class Pieces:
    """One source's state between the pieces of a line longer than ``max_line_bytes``: ``mark`` takes the
    source's lines in order and returns each piece as a ``LinePiece`` of one line (the tailer and stdin)."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: tuple[dict[str, str], int] | None = None  # the line being cut, and its last piece's number

    def mark(self, line: bytes, cut: bool) -> bytes:
        """``line`` is the source's next line, or piece of one; ``cut``: it ends without its newline (the rest
        of the line follows). A whole line that follows no cut piece is returned as it is."""
        if self.current is None and not cut:
            return line
        shared, number = self.current if self.current is not None else ({}, 0)
        self.current = (shared, number + 1) if cut else None
        return LinePiece.of(line, shared, number + 1)


# the correlation ID of a JSON line cut short (its head can no longer be parsed): looked for in the first 64 KiB
_HEAD_ID = re.compile(rb'"correlation_id"\s{0,64}:\s{0,64}"([^"\\\x00-\x1f]{1,1024})"')
_HEAD_BYTES = 64 << 10


def _mark_piece(event: dict[str, Any], piece: LinePiece) -> None:
    """Flag ``event`` as a piece of a long line (``log.flags``, ``event.sequence``: its number) and give it the
    line's correlation ID: its own, else the one the first piece named."""
    shared = piece.line
    cid = event.get("correlation_id")
    if cid.__class__ is str and cid:
        shared.setdefault("correlation_id", cid)
    else:
        if piece.number == 1:
            found = _HEAD_ID.search(piece, 0, _HEAD_BYTES)
            if found is not None:
                shared["correlation_id"] = found.group(1).decode("utf-8", "replace")
        if "correlation_id" in shared:
            event["correlation_id"] = shared["correlation_id"]
    log = event.get("log")
    if log.__class__ is not dict:
        log = event["log"] = {}
    log["flags"] = ["piece"]
    inner = event.get("event")
    if inner.__class__ is not dict:
        inner = event["event"] = {}
    inner["sequence"] = piece.number


def day_of(ms: int) -> str:
    """The ``yyyy.mm.dd`` suffix of the daily index holding an event at ``ms``."""
    day = ms // _DAY_MS
    text = _day_cache.get(day)
    if text is None:
        text = _day_cache[day] = time.strftime("%Y.%m.%d", time.gmtime(day * 86_400))
    return text


class Record:
    """A routed log line. ``doc_id`` is deterministic (source identity + offset) so retries never duplicate."""

    __slots__ = (
        "correlation_id",
        "doc_id",
        "end",
        "environment",
        "host",
        "level",
        "offset",
        "raw",
        "service",
        "source",
        "ts",
    )

    def __init__(
        self,
        source: str,
        offset: int,
        end: int,
        raw: bytes,
        ts: int,
        correlation_id: str | None,
        service: str | None,
        level: str | None,
        environment: str | None = None,
        host: str | None = None,
        doc_id: str | None = None,
    ) -> None:
        self.source = source
        self.offset = offset
        self.end = end
        self.raw = raw
        self.ts = ts
        self.correlation_id = correlation_id
        self.service = service
        self.level = level
        self.environment = environment
        self.host = host
        self.doc_id = doc_id or f"{source}-{offset}"

    def to_list(self) -> list[Any]:
        return [
            self.source,
            self.offset,
            self.end,
            self.raw.decode(),
            self.ts,
            self.correlation_id,
            self.service,
            self.level,
            self.environment,
            self.host,
            self.doc_id,
        ]

    @classmethod
    def from_list(cls, item: list[Any]) -> Record:
        s, o, e, raw, ts, cid, svc, lvl, env, host, doc_id = item
        return cls(s, o, e, raw.encode(), ts, cid, svc, lvl, env, host, doc_id)

    def __repr__(self) -> str:
        return f"Record({self.doc_id!r}, ts={self.ts}, cid={self.correlation_id!r})"


def _scrub(event: dict[str, Any]) -> dict[str, Any]:
    """What orjson can write: lone UTF-16 surrogates (valid JSON escapes, invalid Unicode) become U+FFFD in
    every key and string, non-finite numbers (``NaN``, ``Infinity``, ``1e400``) become null."""

    def fix(text: str) -> str:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    def fix_scalar(value: Any) -> Any:
        if value.__class__ is str:
            return fix(value)
        if value.__class__ is float and not math.isfinite(value):
            return None
        return value

    out: dict[str, Any] = {}
    stack: list[tuple[Any, Any]] = [(event, out)]
    while stack:  # iterative: the depth is whatever the line had
        src, dst = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, value in items:
            if isinstance(value, dict | list):
                copy: Any = {} if isinstance(value, dict) else [None] * len(value)
                stack.append((value, copy))
                value = copy
            else:
                value = fix_scalar(value)
            if isinstance(dst, dict):
                dst[fix(str(key))] = value
            else:
                dst[key] = value
    return out


def _lenient_json(line: bytes) -> dict[str, Any] | None:
    """A JSON object orjson refused for what Python's json writes and reads (a lone surrogate escape such as
    ``"\\ud800"``, ``NaN``, ``Infinity``, a number too large for a float), made storable; else None."""
    if line.lstrip()[:1] != b"{":
        return None
    try:
        event = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return _scrub(event) if type(event) is dict else None


def _keep_original(event: dict[str, Any], line: bytes) -> None:
    """Put the line as read into ``event.original`` (ECS) before the document is changed."""
    inner = event.get("event")
    if inner is None:
        event["event"] = inner = {}
    if inner.__class__ is dict and "original" not in inner:
        inner["original"] = line.decode("utf-8", "replace")


_default: list[LineFormat] = []
_loads = orjson.loads
# the first bytes of a line that may be a JSON object (``{``, or whitespace before one): tried with orjson first
_JSON_HEADS = frozenset((b"{", b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"))


def default_format() -> LineFormat:
    """``auto``: every built-in text format (imported on first use: the parsers use this module's clock)."""
    if not _default:
        from corrtrace.collector.parsers import AUTO

        _default.append(AUTO)
    return _default[0]


def _text_record(source: str, offset: int, end: int, event: dict[str, Any], ms: int, doc_id: str | None) -> Record:
    """The record of a text line a format read, time included: its fields are where the parsers put them (a text
    event names no environment or host; its ``service`` and ``log`` are dicts the format built, ``service.name``
    and ``log.level`` strings), and ``@timestamp`` is not read back."""
    cid = event.get("correlation_id")  # a multiline record may inherit it from a JSON line: checked
    return Record(
        source,
        offset,
        end,
        orjson.dumps(event),
        ms,
        cid if cid.__class__ is str else None,
        event["service"]["name"] if "service" in event else None,
        event["log"].get("level") if "log" in event else None,
        None,
        None,
        doc_id,
    )


def make_record(
    source: str,
    offset: int,
    end: int,
    line: bytes,
    now_ms: int | None = None,
    doc_id: str | None = None,
    default_ts: int | None = None,
    fmt: LineFormat | None = None,
) -> tuple[Record, dict[str, Any]]:
    """Parse one line into a ``Record`` and its event dict: JSON objects as they are (other stacks' field names
    mapped by ``fmt``), other lines through ``fmt``'s text parsers or wrapped, never dropped; an unreadable
    ``@timestamp`` is replaced by the ingest time and flagged (see the collector README)."""
    raw: bytes | None = line
    try:  # a line that cannot be a JSON object goes straight to the text formats (no exception to pay for)
        event = _loads(line) if line[:1] in _JSON_HEADS else None
    except orjson.JSONDecodeError:
        event = _lenient_json(line)
        if event is not None:
            _keep_original(event, line)
            raw = None
    if type(event) is not dict:
        event, ms = (fmt or default_format()).text_event(line)
        if line.__class__ is LinePiece:
            _mark_piece(event, line)  # type: ignore[arg-type]
        if ms is not None and MIN_MS <= ms <= MAX_MS:
            return _text_record(source, offset, end, event, ms, doc_id), event
        raw = None
        service = event.get("service")
    else:
        service = event.get("service")
        if ("correlation_id" not in event or "@timestamp" not in event or service.__class__ is not dict) and (
            fmt or default_format()
        ).adopt(event):
            raw = None
            service = event.get("service")
    ts = parse_timestamp_ms(event.get("@timestamp"))
    if ts is None:
        ts = default_ts if default_ts is not None else (now_ms if now_ms is not None else int(time.time() * 1000))
        if "@timestamp" in event:  # present but unreadable (null too): flag it, keep the line as read
            _keep_original(event, line)
            tags = event.get("tags")
            event["tags"] = ([*tags] if tags.__class__ is list else [] if tags is None else [tags]) + [
                TIMESTAMP_FAILURE_TAG
            ]
        event["@timestamp"] = format_timestamp(ts)
        raw = None
    if raw is None:
        raw = orjson.dumps(event)
    cid = event.get("correlation_id")
    log = event.get("log")
    host = event.get("host")
    svc_name = env = None
    if service.__class__ is dict:
        svc_name = service.get("name")
        env = service.get("environment")
    level = log.get("level") if log.__class__ is dict else event.get("log.level")
    host_name = host.get("name") if host.__class__ is dict else None
    record = Record(
        source,
        offset,
        end,
        raw,
        ts,
        cid if cid.__class__ is str else None,
        svc_name if svc_name.__class__ is str else None,
        level if level.__class__ is str else None,
        env if env.__class__ is str else None,
        host_name if host_name.__class__ is str else None,
        doc_id,
    )
    return record, event


def make_records(
    lines: Sequence[RawLine], now_ms: int, fmt: LineFormat | None = None, events: bool = False
) -> tuple[list[Record], list[dict[str, Any]]]:
    """``make_record`` of each of a source's ``lines`` (the same records), with their events when ``events``
    (else an empty list). A declared built-in format writes the documents of the batch's single text lines
    without an event (``LineFormat.doc_writer``), whose dict is read back from the document only when asked for;
    every other line is read alone (collector/README.md, "Formats")."""
    fmt = fmt or default_format()
    write, service = fmt.doc_writer, fmt.doc_service
    if write is None:
        if not events:
            return [make_record(s, start, end, line, now_ms, fmt=fmt)[0] for s, start, end, line in lines], []
        pairs = [make_record(s, start, end, line, now_ms, fmt=fmt) for s, start, end, line in lines]
        return [record for record, _ in pairs], [event for _, event in pairs]
    records: list[Record] = []
    found: list[dict[str, Any]] = []
    for source, start, end, line in lines:
        doc = None
        # a single text line (not a piece of a long line or a multiline record: those are subclasses)
        if line.__class__ is bytes and line[:1] not in _JSON_HEADS:
            try:
                doc = write(line.decode("utf-8", "replace"), service)
            except Exception:  # read alone: ``text_event`` says it once and keeps the line
                doc = None
        if doc is None:
            record, event = make_record(source, start, end, line, now_ms, fmt=fmt)
            records.append(record)
            if events:
                found.append(event)
        else:
            records.append(Record(source, start, end, *doc))
            if events:
                found.append(_loads(doc[0]))
    return records, found
