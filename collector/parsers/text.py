"""The built-in text formats: one line -> an ECS event dict, or None when the line is not in that format.

Every pattern is linear on any input: each quantified piece is followed by a delimiter its class excludes, so a
failed attempt never retries a split (no nested or adjacent overlapping quantifiers), and every match is anchored
at the start of the line. ``tests/collector/test_parsers.py`` checks this (and agreement with RE2) with
hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from corrtrace.collector.parsers import clock
from corrtrace.collector.record import format_timestamp, parse_timestamp_ms

from corrtrace.ids import is_valid

TextParser = Callable[[str], "dict[str, Any] | None"]

# 09-02-2015 15:03:24 ui-svc INFO [uuid-123] message
TALK = re.compile(r"(\d\d-\d\d-\d{4}) (\d\d:\d\d:\d\d)(?:[.,](\d{1,6}))? ([^\s\[\]]+) ([A-Za-z]+) \[([^\]\s]*)\] ?(.*)")
# 2024-01-15 10:23:45,123 [http-nio-8080-exec-1] INFO  com.example.Orders - [uuid-123] message
LOGBACK = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:[,.](\d{1,9}))? \[([^\]]*)\] +"
                     r"(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL) +(\S+) +- +\[([^\]\s]*)\] ?(.*)")
# nginx combined + the id (quoted or not) + optionally $request_time $msec (deploy/nginx/corrtrace.conf)
NGINX = re.compile(r'(\S+) - (\S+) \[([^\]]*)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"'
                   r'(?: "?([^"\s]*)"?)?(?: (\d+(?:\.\d+)?) (\d+(?:\.\d+)?))?\s*$')
# logfmt: key=value or key="quoted \" value", separated by spaces; matched pair by pair from the start
LOGFMT_PAIR = re.compile(r'([^\s="]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*))(?:\s+|$)')
LOGFMT_MAX_PAIRS = 256

_LOGFMT_TIME = frozenset({"time", "ts", "timestamp", "t", "@timestamp"})
_LOGFMT_LEVEL = frozenset({"level", "lvl", "severity", "loglevel", "at"})
_LOGFMT_MESSAGE = frozenset({"msg", "message"})
_LOGFMT_SERVICE = frozenset({"service", "service.name", "app", "svc"})
_ESCAPES = re.compile(r"\\(.)")


def _cid(value: str | None) -> str | None:
    return value if value and is_valid(value) else None


def _base(ms: int | None, level: str | None, message: str, cid: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"message": message}
    if ms is not None:
        event["@timestamp"] = format_timestamp(ms)
    if level:
        event["log"] = {"level": level.upper()}
    if cid:
        event["correlation_id"] = cid
    return event


def talk(line: str) -> dict[str, Any] | None:
    m = TALK.match(line)
    if m is None:
        return None
    date, time_, frac, service, level, cid, message = m.groups()
    event = _base(clock.day_first(date, time_, frac), level, message, _cid(cid))
    event["service"] = {"name": service}
    return event


def logback(line: str) -> dict[str, Any] | None:
    m = LOGBACK.match(line)
    if m is None:
        return None
    date, time_, frac, thread, level, logger, cid, message = m.groups()
    event = _base(clock.year_first(date, time_, frac), level, message, _cid(cid))
    event["log"]["logger"] = logger
    event["process"] = {"thread": {"name": thread}}
    return event


def nginx(line: str) -> dict[str, Any] | None:
    m = NGINX.match(line)
    if m is None:
        return None
    addr, user, local, request, status, size, referrer, agent, cid, request_time, msec = m.groups()
    ms = clock.nginx_local(local)
    if request_time and msec:  # the request's start, in milliseconds: it sorts before the services it called
        ms = round((float(msec) - float(request_time)) * 1000)
    code = int(status)
    event = _base(ms, "ERROR" if code >= 500 else "INFO", f"{request} {status}", _cid(cid if cid != "-" else None))
    method, _, rest = request.partition(" ")
    target = rest.rpartition(" ")[0] if rest.count(" ") else rest
    http: dict[str, Any] = {"response": {"status_code": code, "body": {"bytes": int(size)}}}
    if method and target:
        http["request"] = {"method": method}
        event["url"] = {"original": target, "path": target.partition("?")[0]}
        if rest.startswith("HTTP/", len(target) + 1):
            http["version"] = rest[len(target) + 6:]
    if referrer and referrer != "-":
        http.setdefault("request", {})["referrer"] = referrer
    event["http"] = http
    event["source"] = {"address": addr}
    if user != "-":
        event["user"] = {"name": user}
    if agent and agent != "-":
        event["user_agent"] = {"original": agent}
    event["event"] = {"dataset": "nginx.access"}
    if request_time:
        event["event"]["duration"] = int(float(request_time) * 1e9)
    return event


def logfmt(line: str) -> dict[str, Any] | None:
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    while pos < end:
        m = LOGFMT_PAIR.match(line, pos)
        if m is None or len(pairs) >= LOGFMT_MAX_PAIRS:
            return None
        key, quoted, bare = m.groups()
        pairs.append((key, _ESCAPES.sub(r"\1", quoted) if quoted is not None else bare))
        pos = m.end()
    if len(pairs) < 2:
        return None
    event: dict[str, Any] = {}
    labels: dict[str, str] = {}
    known = False
    for key, value in pairs:
        lower = key.lower()
        if lower in _LOGFMT_TIME:
            ms = parse_timestamp_ms(value)
            if ms is not None:
                event["@timestamp"] = format_timestamp(ms)
                known = True
                continue
        elif lower in _LOGFMT_LEVEL:
            event["log"] = {"level": value.upper()}
            known = True
            continue
        elif lower in _LOGFMT_MESSAGE:
            event["message"] = value
            known = True
            continue
        elif lower in _LOGFMT_SERVICE:
            event["service"] = {"name": value}
            continue
        elif lower == "correlation_id" and _cid(value):
            event["correlation_id"] = value
            known = True
            continue
        labels[key.replace(".", "_")] = value
    if not known:
        return None
    if labels:
        event["labels"] = labels
    event.setdefault("message", "")
    return event


BUILTIN: dict[str, TextParser] = {"talk": talk, "logfmt": logfmt, "logback": logback, "nginx": nginx}
# the service of a format's lines when the line names none and the source declares none
DEFAULT_SERVICE: dict[TextParser, str] = {nginx: "nginx"}
