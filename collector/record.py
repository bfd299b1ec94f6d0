"""One log line on its way to the sinks: the raw JSON bytes plus the few fields routing and search need.

The parsed dict is dropped right after routing so a buffered batch costs little more than its raw bytes.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson

_DAY_MS = 86_400_000
_second_cache: dict[str, int] = {}
_day_cache: dict[int, str] = {}


def _seconds(head: str) -> int | None:
    seconds = _second_cache.get(head)
    if seconds is None:
        try:
            seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
        except ValueError:
            return None
        if len(_second_cache) > 4096:
            _second_cache.clear()
        _second_cache[head] = seconds
    return seconds


def parse_timestamp_ms(value: Any) -> int | None:
    """RFC 3339 text (or epoch milliseconds) -> epoch milliseconds; None when unusable."""
    if value.__class__ is str and len(value) == 24 and value[19] == "." and value[23] == "Z":  # corrtrace's form
        seconds = _second_cache.get(value[:19])
        if seconds is None:
            seconds = _seconds(value[:19])
        if seconds is not None and value[20:23].isdigit():
            return seconds * 1000 + int(value[20:23])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or len(value) < 19:
        return None
    if len(value) >= 20 and value[-1] == "Z" and value[10] == "T":
        seconds = _seconds(value[:19])
        if seconds is None:
            return None
        frac = value[20:-1] if value[19] == "." else ""
        if frac and not frac.isdigit():
            return None
        return seconds * 1000 + (int((frac + "000")[:3]) if frac else 0)
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        return None


def format_timestamp(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC with milliseconds and ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def day_of(ms: int) -> str:
    """The ``yyyy.mm.dd`` suffix of the daily index holding an event at ``ms``."""
    day = ms // _DAY_MS
    text = _day_cache.get(day)
    if text is None:
        text = _day_cache[day] = time.strftime("%Y.%m.%d", time.gmtime(day * 86_400))
    return text


class Record:
    """A routed log line. ``doc_id`` is deterministic (source identity + offset) so retries never duplicate."""

    __slots__ = ("correlation_id", "doc_id", "end", "environment", "host", "level", "offset", "raw", "service",
                 "source", "ts")

    def __init__(self, source: str, offset: int, end: int, raw: bytes, ts: int, correlation_id: str | None,
                 service: str | None, level: str | None, environment: str | None = None, host: str | None = None,
                 doc_id: str | None = None) -> None:
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
        return [self.source, self.offset, self.end, self.raw.decode(), self.ts, self.correlation_id, self.service,
                self.level, self.environment, self.host, self.doc_id]

    @classmethod
    def from_list(cls, item: list[Any]) -> Record:
        s, o, e, raw, ts, cid, svc, lvl, env, host, doc_id = item
        return cls(s, o, e, raw.encode(), ts, cid, svc, lvl, env, host, doc_id)

    def __repr__(self) -> str:
        return f"Record({self.doc_id!r}, ts={self.ts}, cid={self.correlation_id!r})"


def make_record(source: str, offset: int, end: int, line: bytes, now_ms: int | None = None,
                doc_id: str | None = None, default_ts: int | None = None) -> tuple[Record, dict[str, Any]]:
    """Parse one line into a ``Record`` and its event dict. A non-JSON line is wrapped, never dropped."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    raw: bytes | None = line
    if type(event) is not dict:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        event = {"message": text, "log": {"original": text}}
        raw = None
    ts = parse_timestamp_ms(event.get("@timestamp"))
    if ts is None:
        ts = default_ts if default_ts is not None else (now_ms if now_ms is not None else int(time.time() * 1000))
        event["@timestamp"] = format_timestamp(ts)
        raw = None
    if raw is None:
        raw = orjson.dumps(event)
    service = event.get("service")
    log = event.get("log")
    host = event.get("host")
    cid = event.get("correlation_id")
    svc_name = env = level = host_name = None
    if service.__class__ is dict:
        svc_name = service.get("name")
        env = service.get("environment")
    level = log.get("level") if log.__class__ is dict else event.get("log.level")
    if host.__class__ is dict:
        host_name = host.get("name")
    record = Record(source, offset, end, raw, ts, cid if cid.__class__ is str else None,
                    svc_name if svc_name.__class__ is str else None, level if level.__class__ is str else None,
                    env if env.__class__ is str else None, host_name if host_name.__class__ is str else None, doc_id)
    return record, event
