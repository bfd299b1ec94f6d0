"""A user's format: a regular expression with named groups, run with RE2 (linear time, whatever the pattern).

Group names ``timestamp`` (read with ``time_format``, else as RFC 3339), ``level``, ``service``, ``message``,
``correlation_id``, ``logger`` and ``thread`` fill the ECS fields; any other group goes to ``labels``.
"""

from __future__ import annotations

from typing import Any

from corrtrace.collector.parsers import clock

from corrtrace.ids import is_valid
from corrtrace.timestamps import parse_timestamp_ms

MAX_PATTERN = 4096


class UserFormat:
    """Callable like the built-in parsers: line -> (event, epoch ms or None), or None when the pattern does not
    match."""

    def __init__(self, pattern: str, *, time_format: str | None = None) -> None:
        import re2
        from corrtrace.collector.parsers import FORMAT_NAMES, FormatError

        if len(pattern) > MAX_PATTERN:
            raise FormatError(f"the regular expression is longer than {MAX_PATTERN} characters")
        options = re2.Options()
        options.log_errors = False
        try:
            self.regex = re2.compile(pattern, options)
        except re2.error as exc:
            reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise FormatError(
                f"{pattern[:60]!r} is not a built-in format ({', '.join(FORMAT_NAMES)}) "
                f"nor a valid regular expression: {reason}"
            ) from None
        self.groups = list(self.regex.groupindex)
        if not self.groups:
            raise FormatError(
                f"{pattern[:60]!r} is not a built-in format ({', '.join(FORMAT_NAMES)}) "
                "and has no named group like (?P<correlation_id>...)"
            )
        if time_format and (problem := clock.time_format_problem(time_format)):
            raise FormatError(f"time_format {time_format[:60]!r}: {problem}")
        self.pattern = pattern
        self.time_format = time_format

    def __call__(self, line: str) -> tuple[dict[str, Any], int | None] | None:
        m = self.regex.match(line)
        if m is None:
            return None
        event: dict[str, Any] = {"message": ""}
        ms = None
        labels: dict[str, str] = {}
        for name, value in m.groupdict().items():
            if value is None:
                continue
            if name == "timestamp":
                ms = clock.with_format(value, self.time_format) if self.time_format else parse_timestamp_ms(value)
            elif name == "level":
                event.setdefault("log", {})["level"] = value.upper()
            elif name == "logger":
                event.setdefault("log", {})["logger"] = value
            elif name == "service":
                event["service"] = {"name": value}
            elif name == "message":
                event["message"] = value
            elif name == "correlation_id":
                if is_valid(value):
                    event["correlation_id"] = value
            elif name == "thread":
                event["process"] = {"thread": {"name": value}}
            else:
                labels[name] = value
        if labels:
            event["labels"] = labels
        return event, ms
