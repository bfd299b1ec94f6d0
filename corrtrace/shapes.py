"""Reading nested data that arrives from outside (AWS events, subscription payloads): a part of the wrong shape
reads as absent, so one malformed field is skipped or defaulted where it is read instead of raising in the middle
of a batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def whole_number(text: str, max_digits: int = 19) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits, at most ``max_digits`` of them, else None
    (``str.isdigit`` passes other scripts' digits and ``²``, and ``int()`` refuses thousands of digits)."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``raw[key]`` when it is an object, else empty."""
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def entries(raw: Mapping[str, Any], key: str) -> list[Any]:
    """``raw[key]`` when it is a list, else empty."""
    value = raw.get(key)
    return value if isinstance(value, list) else []
