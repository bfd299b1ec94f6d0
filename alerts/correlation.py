"""Find the correlation ID of a log event: the JSON field, else a ``correlation_id=...`` marker in text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from corrtrace.ids import is_valid

_TEXT_ID = re.compile(r"correlation[_-]?id[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9\-_.:]{1,128})", re.IGNORECASE)


def correlation_id_of(event: Any, raw_line: str | None = None) -> str | None:
    """The valid correlation ID carried by ``event`` (a parsed JSON line) or found in ``raw_line``.

    A JSON event is read by its fields, and its text only through its ``message``: the raw JSON of a line logged
    outside any request (``"correlation_id": null``) must not yield the ID ``null``.
    """
    if isinstance(event, Mapping):
        value = event.get("correlation_id")
        if value is None:
            labels = event.get("labels")
            value = labels.get("correlation_id") if isinstance(labels, Mapping) else None
        if isinstance(value, str) and is_valid(value):
            return value
        message = event.get("message")
        raw_line = message if isinstance(message, str) else None
    if raw_line:
        match = _TEXT_ID.search(raw_line)
        if match and is_valid(match.group(1)):
            return match.group(1)
    return None
