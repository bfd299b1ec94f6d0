"""How one source's lines become events (see ``collector/README.md``, "Formats").

A ``LineFormat`` holds the text parsers tried in order on a line that is not a JSON object (the first that
matches wins; a line none matches is wrapped as ``{"message", "log": {"original"}}``), the aliases that map
other stacks' JSON fields onto corrtrace's (``correlationId`` -> ``correlation_id``, ``app`` -> ``service.name``),
and the service of lines that name none. JSON objects are never run through the text parsers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import corrtrace.collector.parsers.compiled  # noqa: F401  (first: it decides which clock and text are imported)
import orjson
from corrtrace.collector.parsers import clock
from corrtrace.collector.parsers.text import BUILTIN, DEFAULT_SERVICE, DOC_WRITERS, DocWriter, TextParser
from corrtrace.collector.parsers.user import UserFormat

from corrtrace.errors import InvalidInput
from corrtrace.ids import is_valid
from corrtrace.logging import wrap_text
from corrtrace.timestamps import format_timestamp, parse_timestamp_ms

log = logging.getLogger("corrtrace.collector")
FORMAT_NAMES = ("auto", "json", *BUILTIN)
DEFAULT_ID_ALIASES = ("correlationId", "correlation-id", "x_correlation_id", "requestId", "request_id")
DEFAULT_SERVICE_ALIASES = ("service", "service_name", "app", "application", "logger_name")
_TIME_ALIASES = ("timestamp", "time", "ts")
_LEVEL_ALIASES = ("level", "severity")


class FormatError(InvalidInput):
    """A declared format is neither a built-in name nor a usable regular expression (one line, for the user)."""


class JoinedLines(bytes):
    """The bytes of one multiline record (lines joined by ``\\n``) and what the joiner knew about it."""

    truncated: bool = False
    inherited: dict[str, Any] | None = None  # correlation_id / @timestamp of the nearest JSON line before it


class LineFormat:
    """One source's parsing: ``text_event`` for non-JSON lines, ``adopt`` for other stacks' JSON objects."""

    __slots__ = ("doc_service", "doc_writer", "id_aliases", "name", "parsers", "service", "service_aliases")

    def __init__(
        self,
        name: str = "auto",
        parsers: Sequence[TextParser] = (),
        *,
        service: str | None = None,
        id_aliases: Sequence[str] = DEFAULT_ID_ALIASES,
        service_aliases: Sequence[str] = DEFAULT_SERVICE_ALIASES,
    ) -> None:
        self.name = name
        self.parsers = tuple(parsers)
        self.service = service
        self.id_aliases = tuple(id_aliases)
        self.service_aliases = tuple(service_aliases)
        # one declared built-in format (talk, logfmt, logback, nginx): the writer of a single text line's document
        # without an event (``text.DOC_WRITERS``: the document, or None for a line to read alone with
        # ``text_event``; used by ``record.make_records``), and the service it gives a line that names none (name,
        # as JSON text); None otherwise
        self.doc_writer: DocWriter | None = DOC_WRITERS.get(self.parsers[0]) if len(self.parsers) == 1 else None
        named = service or (DEFAULT_SERVICE.get(self.parsers[0]) if self.doc_writer is not None else None)
        self.doc_service = None if named is None else (named, orjson.dumps(named).decode())

    def text_event(self, line: bytes) -> tuple[dict[str, Any], int | None]:
        """The event of a line that is not a JSON object (for a multiline record, its first line is parsed and
        the rest follows the message), and its time in epoch ms when a parser read one (None otherwise: then
        ``@timestamp`` is absent or, for a multiline record, the nearest JSON line's, still to be read)."""
        text = line.decode("utf-8", "replace")
        if "\n" in text or "\r" in text:  # a multiline record, or a line end kept
            text = text.rstrip("\r\n")
            first, joined, rest = text.partition("\n")
        else:
            first = text
            joined = rest = ""
        parsed = None
        for parse in self.parsers:
            try:
                parsed = parse(first)
            except Exception as exc:  # a parser's bug must not stop shipping: the line is not in that format
                _parser_failed(parse, exc)
                parsed = None
            if parsed is not None:
                break
        service = self.service
        ms = None
        if parsed is None:
            event = wrap_text(text)
        else:
            event, ms = parsed
            if ms is not None and "@timestamp" not in event:  # a parser may have it as written already
                event["@timestamp"] = clock.iso(ms)
            if joined:
                event["message"] = f"{event.get('message', '')}\n{rest}"
            if "correlation_id" not in event and "labels" in event:
                self._alias_id(event, event["labels"])
            service = service or DEFAULT_SERVICE.get(parse)
        if service and "service" not in event:
            event["service"] = {"name": service}
        if joined:
            self._joined(event, line)
        return event, ms

    @staticmethod
    def _joined(event: dict[str, Any], line: bytes) -> None:
        log = event.get("log")
        if log.__class__ is not dict:
            log = event["log"] = {}
        truncated = getattr(line, "truncated", False)
        log["flags"] = ["multiline", "truncated"] if truncated else ["multiline"]
        inherited = getattr(line, "inherited", None)
        if inherited:
            for key in ("correlation_id", "@timestamp"):
                if key not in event and key in inherited:
                    event[key] = inherited[key]

    def adopt(self, event: dict[str, Any]) -> bool:
        """Map alias fields of a JSON object without ``correlation_id``/``service.name``/``@timestamp`` onto
        them (originals kept); True when ``event`` changed."""
        changed = False
        if "correlation_id" not in event:
            changed = self._alias_id(event, event)
        service = event.get("service")
        if service.__class__ is not dict or "name" not in service:
            name = None
            for key in self.service_aliases:
                value = event.get(key)
                if value.__class__ is str and value:
                    name = value
                    break
            name = name or self.service
            if name:
                if service.__class__ is dict:
                    service["name"] = name
                else:  # a plain "service": "orders" becomes {"name": "orders"}; nothing is lost
                    event["service"] = {"name": name}
                changed = True
        if "@timestamp" not in event:
            for key in _TIME_ALIASES:
                ms = parse_timestamp_ms(event.get(key))
                if ms is not None:
                    event["@timestamp"] = format_timestamp(ms)
                    changed = True
                    break
        if "message" not in event and event.get("msg").__class__ is str:  # pino, zap, slog's JSON
            event["message"] = event["msg"]
            changed = True
        if event.get("log") is None:
            for key in _LEVEL_ALIASES:
                value = event.get(key)
                if value.__class__ is str and value:
                    event["log"] = {"level": value.upper()}
                    changed = True
                    break
        return changed

    def _alias_id(self, event: dict[str, Any], fields: dict[str, Any]) -> bool:
        for key in self.id_aliases:
            value = fields.get(key)
            if value.__class__ is str and is_valid(value):
                event["correlation_id"] = value
                return True
        return False


_failed: set[str] = set()


def _parser_failed(parse: TextParser, exc: Exception) -> None:
    """Say once per parser that it raised (its name and the exception's type: the line and the message, which
    may quote it, are untrusted and stay out of the log); the line goes on to the next format or is kept as text."""
    name = getattr(parse, "__name__", type(parse).__name__)
    if name not in _failed:
        _failed.add(name)
        log.warning(
            "the %s format failed on a line (%s); such lines are kept as text (said once)", name, type(exc).__name__
        )


def build_format(
    spec: str | None = "auto",
    *,
    service: str | None = None,
    time_format: str | None = None,
    id_aliases: Sequence[str] = DEFAULT_ID_ALIASES,
    service_aliases: Sequence[str] = DEFAULT_SERVICE_ALIASES,
) -> LineFormat:
    """``auto`` (every built-in, in order), ``json`` (none), a built-in name, or a user regular expression with
    named groups. Raises ``FormatError`` with a one-line reason."""
    name = (spec or "auto").strip()
    if name == "auto":
        parsers: list[TextParser] = list(BUILTIN.values())
    elif name == "json":
        parsers = []
    elif name in BUILTIN:
        parsers = [BUILTIN[name]]
    else:
        parsers = [UserFormat(name, time_format=time_format)]
        name = "regex"
    return LineFormat(name, parsers, service=service, id_aliases=id_aliases, service_aliases=service_aliases)


AUTO = build_format()

__all__ = [
    "AUTO",
    "DEFAULT_ID_ALIASES",
    "DEFAULT_SERVICE_ALIASES",
    "FORMAT_NAMES",
    "FormatError",
    "JoinedLines",
    "LineFormat",
    "build_format",
]
