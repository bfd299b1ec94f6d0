"""Timestamps: RFC 3339 text (or epoch milliseconds) <-> epoch milliseconds, the one rule for every part.

The collector routes and stores by it, the alert engine bins datapoints by it, the alert handler reads
CloudWatch's alarm times with it. corrtrace's own form (``2026-11-30T12:00:05.123Z``) takes a cached fast path:
a log repeats each second many times. See collector/README.md ("Faults": unreadable ``@timestamp``).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

__all__ = ["MAX_MS", "MIN_MS", "format_timestamp", "parse_timestamp_ms", "parse_timestamp_s"]

# Years 1..9999: what RFC 3339, daily index names and SQLite integers can all hold. Anything else is unreadable.
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999
_CACHE_SIZE = 4096
_second_cache: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds
_text_cache: dict[int, str] = {}  # epoch seconds -> "YYYY-MM-DDTHH:MM:SS"
_MILLIS = {f".{ms:03d}Z": ms for ms in range(1000)}  # the tail of corrtrace's form -> its milliseconds


def _seconds(head: str) -> int | None:
    seconds = _second_cache.get(head)
    if seconds is None:
        try:
            seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
        except ValueError:
            return None
        if len(_second_cache) > _CACHE_SIZE:
            _second_cache.clear()
        _second_cache[head] = seconds
    return seconds


def parse_timestamp_ms(value: Any) -> int | None:
    """RFC 3339 text (or epoch milliseconds) -> epoch milliseconds; None when unusable (garbage, NaN, or
    outside years 1..9999). Text without a zone is read as local time, as ``datetime`` does."""
    if value.__class__ is str and len(value) == 24:  # corrtrace's form: two slices, two dict look-ups
        millis = _MILLIS.get(value[19:])
        if millis is not None:
            seconds = _second_cache.get(value[:19])
            if seconds is None:
                seconds = _seconds(value[:19])
            if seconds is not None:
                return seconds * 1000 + millis
    ms = _parse_other(value)
    return ms if ms is not None and MIN_MS <= ms <= MAX_MS else None


def _parse_other(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if MIN_MS <= value <= MAX_MS else None  # False for NaN too
    if not isinstance(value, str) or len(value) < 19:
        return None
    if len(value) >= 20 and value[-1] == "Z" and value[10] == "T":
        seconds = _seconds(value[:19])
        if seconds is None:
            return None
        frac = value[20:-1] if value[19] == "." else ""
        if frac and not frac.isdecimal():  # "1²3" is isdigit() but no int(): unreadable, not an error
            return None
        return seconds * 1000 + (int((frac + "000")[:3]) if frac else 0)
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        return None


def parse_timestamp_s(value: Any) -> float | None:
    """``parse_timestamp_ms`` for text only, in epoch seconds (what alarms and metrics count in)."""
    ms = parse_timestamp_ms(value) if isinstance(value, str) else None
    return ms / 1000 if ms is not None else None


def format_timestamp(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC with milliseconds and ``Z`` (corrtrace's form), the seconds cached."""
    seconds = ms // 1000
    head = _text_cache.get(seconds)
    if head is None:
        if len(_text_cache) > _CACHE_SIZE:
            _text_cache.clear()
        head = _text_cache[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{head}.{ms % 1000:03d}Z"
