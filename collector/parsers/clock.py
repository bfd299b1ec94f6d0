"""Timestamps of the text formats -> epoch milliseconds, cached per second (a log repeats each second many times).

Times without a zone (the talk's format, logback's default ``%d``) are read as UTC.
"""

from __future__ import annotations

import calendar
from datetime import datetime

from corrtrace.timestamps import format_timestamp, parse_timestamp_ms

_MONTHS = {
    name: i
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_cache: dict[str, int | None] = {}
_heads: dict[int, str] = {}  # epoch seconds -> "YYYY-MM-DDTHH:MM:SS"
_rfc_ms: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS." -> epoch ms of that second
_canonical: dict[str, int] = {}  # the same, for heads that are ``format_timestamp``'s own text
_MILLIS = {f"{i:03d}": i for i in range(1000)}  # "007" -> 7: ASCII digits only (others go the long way)
_FRACTIONS = tuple(f".{i:03d}Z" for i in range(1000))


def _remember(key: str, seconds: int | None) -> int | None:
    if len(_cache) > 4096:
        _cache.clear()
    _cache[key] = seconds
    return seconds


def _fields(year: str, month: str, day: str, clock: str) -> int | None:
    """Seconds since the epoch of ``year-month-day clock`` (``HH:MM:SS``) in UTC; None when not a real time."""
    try:
        y, mo, d = int(year), int(month), int(day)
        h, mi, s = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
        datetime(y, mo, d, h, mi, s)  # range check (month 13, Feb 30, ...)
    except ValueError:
        return None
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def _millis(seconds: int | None, fraction: str | None) -> int | None:
    if seconds is None:
        return None
    return seconds * 1000 + (int((fraction + "00")[:3]) if fraction else 0)


def day_first(date: str, clock: str, fraction: str | None = None) -> int | None:
    """``DD-MM-YYYY`` + ``HH:MM:SS`` (the talk's format)."""
    key = date + clock
    seconds = _cache[key] if key in _cache else _remember(key, _fields(date[6:10], date[3:5], date[0:2], clock))
    return _millis(seconds, fraction)


def year_first(date: str, clock: str, fraction: str | None = None) -> int | None:
    """``YYYY-MM-DD`` + ``HH:MM:SS`` (logback's ``%d``)."""
    key = date + clock
    seconds = _cache[key] if key in _cache else _remember(key, _fields(date[0:4], date[5:7], date[8:10], clock))
    return _millis(seconds, fraction)


def nginx_local(value: str) -> int | None:
    """nginx's ``$time_local``: ``10/Oct/2000:13:55:36 -0700``."""
    if value in _cache:
        return _millis(_cache[value], None)
    seconds = None
    month = _MONTHS.get(value[3:6])
    if len(value) == 26 and month is not None and value[21] in "+-" and value[22:26].isdecimal():
        seconds = _fields(value[7:11], str(month), value[0:2], value[12:20])
        if seconds is not None:
            offset = int(value[22:24]) * 3600 + int(value[24:26]) * 60
            seconds -= offset if value[21] == "+" else -offset
    return _millis(_remember(value, seconds), None)


def with_format(value: str, time_format: str) -> int | None:
    """A user format's ``timestamp`` group read with ``strptime``; a time without a zone is UTC."""
    try:
        parsed = datetime.strptime(value, time_format)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return calendar.timegm(parsed.timetuple()) * 1000 + parsed.microsecond // 1000
    return int(parsed.timestamp() * 1000)


def time_format_problem(time_format: str) -> str | None:
    """What makes ``time_format`` unusable by ``strptime`` (``%Q``, a lone ``%`` at the end), else None: said
    when the format is declared, since at read time every line would only fall back to the ingest time."""
    try:
        datetime.strptime("", time_format)
    except ValueError as exc:
        reason = str(exc)
        return None if reason.startswith("time data") else reason  # "does not match": the format itself is fine
    return None


def iso(ms: int) -> str:
    """``format_timestamp(ms)``, the same text, in a third of its time: the second's head is cached and the
    milliseconds come from a table (a text line is formatted once, on the format's own path)."""
    head = _heads.get(ms // 1000)
    if head is None:
        if len(_heads) > 4096:
            _heads.clear()
        head = _heads[ms // 1000] = format_timestamp(ms - ms % 1000)[:-5]
    return head + _FRACTIONS[ms % 1000]


def rfc3339(value: str) -> int | None:
    """``parse_timestamp_ms(value)``, with corrtrace's own form (``2026-11-30T12:00:05.123Z``, what most logfmt
    writers put in ``time=``) read from a per-second cache: one lookup for the second, one for the milliseconds."""
    if len(value) == 24 and value[19] == "." and value[23] == "Z" and value[10] == "T":
        head = value[:20]
        whole = _rfc_ms.get(head)
        if whole is None:
            whole = parse_timestamp_ms(head + "000Z")
            if whole is None:
                return parse_timestamp_ms(value)
            if len(_rfc_ms) > 4096:
                _rfc_ms.clear()
                _canonical.clear()
            _rfc_ms[head] = whole
            if format_timestamp(whole)[:20] == head:
                _canonical[head] = whole
        millis = _MILLIS.get(value[20:23])
        if millis is None:
            if not value[20:23].isdecimal():  # "1²3" is isdigit() but no int(): unreadable, not an exception
                return None
            millis = int(value[20:23])  # other scripts' decimal digits, as parse_timestamp_ms reads them
        return whole + millis
    return parse_timestamp_ms(value)


def canonical(value: str) -> int | None:
    """Epoch ms of ``value`` when it is exactly ``format_timestamp``'s text for them (``2026-11-30T12:00:05.123Z``)
    and its second was read before by ``rfc3339``; else None. Such a value can be written as ``@timestamp`` as is."""
    whole = _canonical.get(value[:20])
    if whole is None or len(value) != 24 or value[23] != "Z":
        return None
    millis = _MILLIS.get(value[20:23])
    return None if millis is None else whole + millis
