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

from corrtrace.ids import DEFAULT_POLICY

# line -> (event, epoch ms of its time or None), or None when the line is not in the format; ``@timestamp`` is
# written from the ms by ``LineFormat.text_event`` (so make_record need not read it back)
TextParser = Callable[[str], "tuple[dict[str, Any], int | None] | None"]

# 09-02-2015 15:03:24 ui-svc INFO [uuid-123] message
TALK = re.compile(r"(\d\d-\d\d-\d{4}) (\d\d:\d\d:\d\d)(?:[.,](\d{1,6}))? ([^\s\[\]]+) ([A-Za-z]+) \[([^\]\s]*)\] ?(.*)")
# 2024-01-15 10:23:45,123 [http-nio-8080-exec-1] INFO  com.example.Orders - [uuid-123] message
LOGBACK = re.compile(
    r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:[,.](\d{1,9}))? \[([^\]]*)\] +"
    r"(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL) +(\S+) +- +\[([^\]\s]*)\] ?(.*)"
)
_ID_MAX = DEFAULT_POLICY.max_length
_ID_MATCH = re.compile(DEFAULT_POLICY.allowed_pattern).fullmatch  # ``is_valid``, one call less per line
# the policy's id as a pattern piece (``[A-Za-z0-9\-_.:]{1,128}``): a format that captures it needs no check after
_ID = DEFAULT_POLICY.allowed_pattern.removesuffix("+") + f"{{1,{_ID_MAX}}}"
# nginx combined + the id (quoted or not) + optionally $request_time $msec (deploy/nginx/corrtrace.conf). The id
# group holds the token only when it is a valid id (else the other branch reads it, uncaptured); optional parts
# are written ``(?:X|)``, not ``(?:X)?``: the same match, without sre's repeat bookkeeping around groups.
NGINX = re.compile(
    r'(\S+) - (\S+) \[([^\]]*)\] "([^"]*)" (\d{3}) (\d{1,19}) "([^"]*)" "([^"]*)"'
    r'(?: "?(?:(' + _ID + r')|[^"\s]*)"?|)(?: (\d{1,9}(?:\.\d{1,6}|)) (\d{1,11}(?:\.\d{1,6}|))|)\s*$'
)
# logfmt: key=value or key="quoted \" value", separated by whitespace (the grammar, as a regular expression:
# ``\s*(?:[^\s="]+=(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^\s"]*)(?:\s+|$))+``). Read by ``logfmt_fields`` in one pass.
LOGFMT_MAX_PAIRS = 256
_QUOTED = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*')  # a quoted value's inside: every backslash escapes one character

_LOGFMT_ROLE = {
    **dict.fromkeys(("time", "ts", "timestamp", "t", "@timestamp"), "time"),
    **dict.fromkeys(("level", "lvl", "severity", "loglevel", "at"), "level"),
    **dict.fromkeys(("msg", "message"), "message"),
    **dict.fromkeys(("service", "service.name", "app", "svc"), "service"),
    "correlation_id": "correlation_id",
}
_LOGFMT_KEYS = _LOGFMT_ROLE.keys()
_ESCAPES = re.compile(r"\\(.)")


def _cid(value: str | None) -> str | None:
    return value if value and len(value) <= _ID_MAX and _ID_MATCH(value) is not None else None


def talk(line: str) -> tuple[dict[str, Any], int | None] | None:
    m = TALK.match(line)
    if m is None:
        return None
    date, time_, frac, service, level, cid, message = m.groups()
    event: dict[str, Any] = {"message": message, "log": {"level": level.upper()}, "service": {"name": service}}
    if _cid(cid):
        event["correlation_id"] = cid
    return event, clock.day_first(date, time_, frac)


def logback(line: str) -> tuple[dict[str, Any], int | None] | None:
    m = LOGBACK.match(line)
    if m is None:
        return None
    date, time_, frac, thread, level, logger, cid, message = m.groups()
    event: dict[str, Any] = {
        "message": message,
        "log": {"level": level.upper(), "logger": logger},
        "process": {"thread": {"name": thread}},
    }
    if _cid(cid):
        event["correlation_id"] = cid
    return event, clock.year_first(date, time_, frac)


def nginx(line: str) -> tuple[dict[str, Any], int | None] | None:
    m = NGINX.match(line)
    if m is None:
        return None
    addr, user, local, request, status, size, referrer, agent, cid, request_time, msec = m.groups()
    code = int(status)
    method, _, rest = request.partition(" ")
    target, _, version = rest.partition(" ")
    if request_time:  # with $request_time and $msec: the request's arrival in ms, so it sorts before what it called
        took = float(request_time)
        ms: int | None = round((float(msec) - took) * 1000)
        about: dict[str, Any] = {"dataset": "nginx.access", "duration": int(took * 1e9)}
    else:
        ms = clock.nginx_local(local)
        about = {"dataset": "nginx.access"}
    http: dict[str, Any] = {
        "request": {"method": method} if referrer == "-" else {"method": method, "referrer": referrer},
        "response": {"status_code": code, "body": {"bytes": int(size)}},
    }
    if version[:5] == "HTTP/":
        http["version"] = version[5:]
    event: dict[str, Any] = {
        "message": request + " " + status,
        "log": {"level": "ERROR" if code >= 500 else "INFO"},
        "http": http,
        "url": {"original": target, "path": target.partition("?")[0]},
        "source": {"address": addr},
        "event": about,
    }
    if cid is not None and cid != "-":  # the pattern captured it only when valid
        event["correlation_id"] = cid
    if user != "-":
        event["user"] = {"name": user}
    if agent != "-":
        event["user_agent"] = {"original": agent}
    return event, ms


def _bare_pairs(fields: dict[str, str], tokens: list[str], room: int) -> int | None:
    """Add ``key=value`` tokens (no quotes, no whitespace) to ``fields``, at most ``room`` of them; the room left,
    or None when a token is not a pair (past the room, tokens are still checked)."""
    for token in tokens if len(tokens) <= room else tokens[:room]:
        name, eq, value = token.partition("=")
        if not name or not eq:
            return None
        fields[name] = value
    if len(tokens) > room:
        if any(token.find("=") < 1 for token in tokens[room:]):  # no "=", or nothing before it: no pair
            return None
        return 0
    return room - len(tokens)


def logfmt_fields(line: str) -> dict[str, str] | None:
    """The pairs of a logfmt line (the first ``LOGFMT_MAX_PAIRS``; a repeated key keeps its last value), or None
    when the line does not follow the grammar. One pass, linear: ``str.split`` reads the stretches between
    quotes, ``str.find`` each quoted value's closing quote (a quote after an odd run of backslashes is escaped).
    """
    fields: dict[str, str] = {}
    room = LOGFMT_MAX_PAIRS
    pos = 0
    while True:
        quote = line.find('"', pos)
        stretch = line[pos:] if quote < 0 else line[pos:quote]
        tokens = stretch.split()
        key = ""
        if quote >= 0:  # the stretch ends with ``key=``, touching the quoted value
            if not tokens or stretch[-1].isspace():
                return None
            key = tokens.pop()
            if key.find("=") != len(key) - 1 or len(key) < 2:
                return None
        if tokens:
            left = _bare_pairs(fields, tokens, room)
            if left is None:
                return None
            room = left
        if quote < 0:
            return fields or None
        end = quote
        while True:
            end = line.find('"', end + 1)
            if end < 0:
                return None
            run = end - 1
            while line[run] == "\\":  # stops at the opening quote at the latest
                run -= 1
            if (end - 1 - run) % 2 == 0:
                break
        value = line[quote + 1 : end]
        if "\\" in value:
            if "\n" in value and _QUOTED.fullmatch(value) is None:  # a backslash cannot escape a line break
                return None
            value = _ESCAPES.sub(r"\1", value)
        if room:
            room -= 1
            fields[key[:-1]] = value
        pos = end + 1
        if pos < len(line) and not line[pos].isspace():
            return None


def logfmt(line: str) -> tuple[dict[str, Any], int | None] | None:
    """Keys are matched as written (logfmt's are lower case); the keys corrtrace does not know go to labels."""
    fields = logfmt_fields(line) if "=" in line else None
    if fields is None:
        return None
    known = fields.keys() & _LOGFMT_KEYS
    if len(fields) < 2 or not known:
        return None
    event: dict[str, Any] = {"message": ""}
    ms = None
    for key in known:
        role = _LOGFMT_ROLE[key]
        if role == "message":
            event["message"] = fields.pop(key)
        elif role == "level":
            event["log"] = {"level": fields.pop(key).upper()}
        elif role == "service":
            event["service"] = {"name": fields.pop(key)}
        elif role == "time":
            read = clock.rfc3339(fields[key])
            if read is not None:
                ms = read
                del fields[key]
        else:
            if _cid(fields[key]):
                event["correlation_id"] = fields.pop(key)
    if fields:
        event["labels"] = {k.replace(".", "_"): v for k, v in fields.items()} if "." in "".join(fields) else fields
    return event, ms


BUILTIN: dict[str, TextParser] = {"talk": talk, "logfmt": logfmt, "logback": logback, "nginx": nginx}
# the service of a format's lines when the line names none and the source declares none
DEFAULT_SERVICE: dict[TextParser, str] = {nginx: "nginx"}
