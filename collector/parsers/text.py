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
from orjson import JSONDecodeError
from orjson import dumps as _dumps
from orjson import loads as _loads

from corrtrace.ids import DEFAULT_POLICY
from corrtrace.timestamps import MAX_MS, MIN_MS

# line -> (event, epoch ms of its time or None), or None when the line is not in the format; ``@timestamp`` is
# written from the ms by ``LineFormat.text_event`` (so make_record need not read it back)
TextParser = Callable[[str], "tuple[dict[str, Any], int | None] | None"]
# a line's stored document written without an event (``nginx_doc``, ``logfmt_doc``), its time in epoch ms, and its
# record's correlation ID, service and level
TextDoc = tuple[bytes, int, "str | None", "str | None", "str | None"]

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
# The request is read in the pattern too (no partition after): its method (up to the first space), target (up to
# the next; its path up to a ``?``) and version (what follows ``HTTP/`` after the second space); each piece stops
# at a character the next one starts with, so no split is ever retried.


def _nginx_pattern(bare: str, quoted: str) -> re.Pattern[str]:
    """nginx's line with ``bare`` as the class of an unquoted stored field (the address, the user) and ``quoted``
    the characters no quoted stored field holds besides its delimiters (``NGINX``, ``NGINX_PLAIN``)."""
    return re.compile(
        rf'({bare}+) - ({bare}+) \[([^\]]*)\] "(([^" {quoted}]*)(?: (([^" ?{quoted}]*)(?:\?[^" {quoted}]*|))'
        rf'(?: (?:HTTP/([^"{quoted}]*)|[^"{quoted}]*)|)|))" '
        rf'(\d{{3}}) (\d{{1,19}}) "([^"{quoted}]*)" "([^"{quoted}]*)"'
        r'(?: "?(?:(' + _ID + r')|[^"\s]*)"?|)(?: (\d{1,9}(?:\.\d{1,6}|)) (\d{1,11}(?:\.\d{1,6}|))|)\s*$'
    )


NGINX = _nginx_pattern(r"\S", "")
# the same line when no field the event stores needs a JSON escape (no ``"``, backslash or control character;
# an address or user in printable ASCII): what it matches, NGINX matches with the same groups (tested), and
# ``nginx_doc`` writes the stored document straight from them
NGINX_PLAIN = _nginx_pattern(r"[!#-\[\]-~]", r"\\\x00-\x1f")
# logfmt: key=value or key="quoted \" value", separated by whitespace (the grammar, as a regular expression:
# ``\s*(?:[^\s="]+=(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^\s"]*)(?:\s+|$))+``). Read by ``logfmt_fields`` in one pass.
LOGFMT_MAX_PAIRS = 256
_QUOTED = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*')  # a quoted value's inside: every backslash escapes one character

# each role's keys, in the order they are preferred when a line has several (the others stay in labels)
_TIME_KEYS = ("time", "ts", "timestamp", "t", "@timestamp")
_LEVEL_KEYS = ("level", "lvl", "severity", "loglevel", "at")
_SERVICE_KEYS = ("service", "service.name", "app", "svc")
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


def _nginx_when(local: str, request_time: str | None, msec: str | None) -> tuple[int | None, int | None]:
    """The request's arrival in epoch ms and its duration in ns: with ``$request_time $msec``, ``$msec`` less the
    duration (so it sorts before what it called); else ``$time_local`` and no duration."""
    if request_time:
        took = float(request_time)
        return round((float(msec or 0) - took) * 1000), int(took * 1e9)
    return clock.nginx_local(local), None


def nginx(line: str) -> tuple[dict[str, Any], int | None] | None:
    m = NGINX.match(line)
    if m is None:
        return None
    (
        addr,
        user,
        local,
        request,
        method,
        target,
        path,
        version,
        status,
        size,
        referrer,
        agent,
        cid,
        request_time,
        msec,
    ) = m.groups()
    code = int(status)
    if target is None:  # a request without a space: all method
        target = path = ""
    ms, duration = _nginx_when(local, request_time, msec)
    about: dict[str, Any] = (
        {"dataset": "nginx.access"} if duration is None else {"dataset": "nginx.access", "duration": duration}
    )
    http: dict[str, Any] = {
        "request": {"method": method} if referrer == "-" else {"method": method, "referrer": referrer},
        "response": {"status_code": code, "body": {"bytes": int(size)}},
    }
    if version is not None:
        http["version"] = version
    event: dict[str, Any] = {
        "message": request + " " + status,
        "log": {"level": "ERROR" if code >= 500 else "INFO"},
        "http": http,
        "url": {"original": target, "path": path},
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


def nginx_doc(line: str, service: tuple[str, str] | None) -> TextDoc | None:
    """What the collector stores for an nginx line, written from ``NGINX_PLAIN``'s groups without building the
    event: ``orjson.dumps`` of the event ``nginx`` + ``LineFormat.text_event`` make (``@timestamp``, then
    ``service.name``: ``service``, the source's (name, as JSON text)), byte for byte (tested), with the record's
    time, ID, service and level. None when the line is to be read alone (not nginx's, a field to escape, no time
    read or one outside ``MIN_MS..MAX_MS``)."""
    m = NGINX_PLAIN.match(line)
    if m is None:
        return None
    name, quoted = service or _NGINX_SERVICE
    addr, user, local, request, method, target, path, version, status, size, referrer, agent, cid, took, msec = (
        m.groups()
    )
    ms, duration = _nginx_when(local, took, msec)
    if ms is None or not MIN_MS <= ms <= MAX_MS:
        return None
    code = int(status)
    level = "ERROR" if code >= 500 else "INFO"
    if target is None:
        target = path = ""
    if cid == "-":
        cid = None
    # the optional members, each where the event has it (empty when it has not)
    referrer = "" if referrer == "-" else f',"referrer":"{referrer}"'
    version = "" if version is None else f',"version":"{version}"'
    took = "" if duration is None else f',"duration":{duration}'
    cid_member = "" if cid is None else f',"correlation_id":"{cid}"'
    user = "" if user == "-" else f',"user":{{"name":"{user}"}}'
    agent = "" if agent == "-" else f',"user_agent":{{"original":"{agent}"}}'
    doc = (
        f'{{"message":"{request} {status}","log":{{"level":"{level}"}},"http":{{"request":{{"method":"{method}"'
        f'{referrer}}},"response":{{"status_code":{code},"body":{{"bytes":{int(size)}}}}}{version}}},'
        f'"url":{{"original":"{target}","path":"{path}"}},"source":{{"address":"{addr}"}},'
        f'"event":{{"dataset":"nginx.access"{took}}}{cid_member}{user}{agent},"@timestamp":"{clock.iso(ms)}",'
        f'"service":{{"name":{quoted}}}}}'
    )
    return doc.encode(), ms, cid, name, level


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


def _escaped_fields(line: str) -> dict[str, str] | None:
    """``logfmt_fields`` of a line with a backslash or possibly more than ``LOGFMT_MAX_PAIRS`` pairs. One pass,
    linear: ``str.split`` reads the stretches between quotes, ``str.find`` each quoted value's closing quote (a
    quote after an odd run of backslashes is escaped)."""
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


def _escaped_or_long(line: str) -> bool:
    """A line for ``_escaped_fields``: it has a backslash, or possibly more than ``LOGFMT_MAX_PAIRS`` pairs (fewer
    than 3 characters a pair, ``k= ``, cannot be)."""
    return "\\" in line or (len(line) > 3 * LOGFMT_MAX_PAIRS and line.count("=") > LOGFMT_MAX_PAIRS)


def logfmt_fields(line: str) -> dict[str, str] | None:
    """The pairs of a logfmt line (the first ``LOGFMT_MAX_PAIRS``; a repeated key keeps its last value), or None
    when the line does not follow the grammar. An ASCII line without a backslash is read by orjson
    (``_json_fields``); what it cannot decide goes to ``_split_fields``, a line with a backslash or possibly more
    than ``LOGFMT_MAX_PAIRS`` pairs to ``_escaped_fields``. All three are linear."""
    if _escaped_or_long(line):
        return _escaped_fields(line)
    fields = _json_fields(line)
    return fields if fields is not None else _split_fields(line)


def _json_fields(line: str) -> dict[str, str] | None:
    """The pairs of an ASCII line without a backslash and with at most ``LOGFMT_MAX_PAIRS`` of them, read as the
    JSON object it becomes when, outside the quoted values, each space becomes ``","`` and each ``=`` ``":"``;
    None when orjson refuses that (another separator than one space, a bare value holding ``=``, a control
    character) or the line is not one of those: ``_split_fields`` decides then. Its values need no JSON escape."""
    if "\\" in line or not line.isascii() or (len(line) > 3 * LOGFMT_MAX_PAIRS and _escaped_or_long(line)):
        return None
    if '"' not in line:
        text = '{"' + line.replace(" ", '","').replace("=", '":"') + '"}'
    else:
        parts = line.split('"')
        last = len(parts) - 1
        if last & 1:  # a quote left open
            return None
        if last == 2:  # one quoted value (``msg="..."``), the usual line: the loop below, unrolled
            head, quoted, tail = parts
            if head[-1:] != "=" or (tail and not tail[0].isspace()):
                return None
            text = '{"' + head.replace(" ", '","').replace("=", '":"') + quoted
            text += tail.replace(" ", '","').replace("=", '":"') + '"}'
        else:
            text = '{"'
            for i in range(0, last, 2):
                stretch = parts[i]
                if stretch[-1:] != "=" or (i and stretch and not stretch[0].isspace()):
                    return None  # a quoted value not right after its ``key=``, or not followed by whitespace
                text += stretch.replace(" ", '","').replace("=", '":"') + parts[i + 1]
            stretch = parts[last]
            if stretch and not stretch[0].isspace():
                return None
            text += stretch.replace(" ", '","').replace("=", '":"') + '"}'
    try:
        fields: dict[str, str] = _loads(text)
    except JSONDecodeError:
        return None
    return None if "" in fields else fields  # ``=v``: a pair without a key


def _split_fields(line: str) -> dict[str, str] | None:
    """``logfmt_fields`` of a line without a backslash (and at most ``LOGFMT_MAX_PAIRS`` pairs): every ``"`` opens
    or closes a value, so one ``str.split('"')`` cuts the line into stretches of bare pairs and quoted values."""
    parts = line.split('"') if '"' in line else (line,)
    if not len(parts) & 1:  # a quote left open
        return None
    fields: dict[str, str] = {}
    last = len(parts) - 1
    key = ""
    for i in range(0, len(parts), 2):  # parts[i]: bare pairs (ending with ``key=`` when a quoted value follows)
        stretch = parts[i]
        tokens = stretch.split()
        if i and stretch and not stretch[0].isspace():  # a quoted value must be followed by whitespace
            return None
        if i < last:
            if not tokens or stretch[-1].isspace():
                return None
            key = tokens.pop()
            if key.find("=") != len(key) - 1 or len(key) < 2:
                return None
        for token in tokens:
            name, eq, value = token.partition("=")
            if not name or not eq:
                return None
            fields[name] = value
        if i < last:
            fields[key[:-1]] = parts[i + 1]
    return fields or None


def _first(fields: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in fields:
            return key
    return None


def _pop_first(fields: dict[str, str], keys: tuple[str, ...]) -> str | None:
    key = _first(fields, keys)
    return None if key is None else fields.pop(key)


def _roles(fields: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """Pop a logfmt line's message, level and service from its pairs: each role's usual key first, inline (the
    loop only for lines that use another); the first key listed wins, the others stay labels."""
    pop = fields.pop
    message = pop("msg", None)
    if message is None:
        message = pop("message", None)
    level = pop("level", None)
    if level is None:
        level = _pop_first(fields, _LEVEL_KEYS)
    service = pop("service", None)
    if service is None:
        service = _pop_first(fields, _SERVICE_KEYS)
    return message, level, service


def _labels(fields: dict[str, str]) -> dict[str, str]:
    """The pairs no role took, with ``.`` in a key written ``_`` (a label's name cannot hold one)."""
    for key in fields:  # a loop, not ``"." in "".join(fields)``: compiled (``parsers/compiled.py``), it is cheaper
        if "." in key:
            return {k.replace(".", "_"): v for k, v in fields.items()}
    return fields


def _event_head(message: str | None, level: str | None, service: str | None) -> dict[str, Any]:
    """A logfmt event's first members: its message (empty when none), level (upper case) and service."""
    event: dict[str, Any] = {"message": "" if message is None else message}
    if level is not None:
        event["log"] = {"level": level.upper()}
    if service is not None:
        event["service"] = {"name": service}
    return event


def _stamp(value: str, ms: int) -> str:
    """``@timestamp`` of a time read as ``ms``: as written when in corrtrace's form, else formatted."""
    return value if clock.canonical(value) == ms else clock.iso(ms)


def logfmt(line: str) -> tuple[dict[str, Any], int | None] | None:
    """Keys are matched as written (logfmt's are lower case); the keys corrtrace does not know go to labels. A line
    naming a role twice (``msg`` and ``message``) fills it from the first key listed; the other stays a label.
    ``@timestamp`` comes before the labels, as written when in corrtrace's form."""
    fields = logfmt_fields(line) if "=" in line else None
    if fields is None or len(fields) < 2:
        return None
    message, level, service = _roles(fields)
    time_key = "time" if "time" in fields else _first(fields, _TIME_KEYS)
    cid = fields.get("correlation_id")
    if message is None and level is None and service is None and time_key is None and cid is None:
        return None
    event = _event_head(message, level, service)
    if cid is not None and _cid(cid):
        event["correlation_id"] = cid
        del fields["correlation_id"]
    ms = None
    if time_key:
        value = fields[time_key]
        ms = clock.canonical(value)
        if ms is None:
            ms = clock.rfc3339(value)
            if ms is not None:
                value = _stamp(value, ms)
        if ms is not None:
            event["@timestamp"] = value
            del fields[time_key]
    if fields:
        event["labels"] = _labels(fields)
    return event, ms


def logfmt_doc(line: str, service: tuple[str, str] | None) -> TextDoc | None:
    """What the collector stores for a logfmt line read by orjson (``_json_fields``: its values need no JSON
    escape), written without an event: ``orjson.dumps`` of the event ``logfmt`` + ``LineFormat.text_event`` make,
    byte for byte (tested), with the record's time, ID, service and level. ``service``: the source's (name, as
    JSON text), for a line that names none. None when the line is to be read alone (another reader, no valid ID
    (the aliases are ``text_event``'s), no time read, or one outside ``MIN_MS..MAX_MS``)."""
    fields = _json_fields(line)
    if fields is None or len(fields) < 2:
        return None
    cid = fields.pop("correlation_id", None)
    if cid is None or not _cid(cid):
        return None
    message, level, name = _roles(fields)
    value = fields.pop("time", None)
    if value is None:
        key = _first(fields, _TIME_KEYS)
        if key is None:
            return None
        value = fields.pop(key)
    ms = clock.canonical(value)
    if ms is None:
        ms = clock.rfc3339(value)
        if ms is None or not MIN_MS <= ms <= MAX_MS:
            return None
        value = _stamp(value, ms)
    elif not MIN_MS <= ms <= MAX_MS:
        return None
    event = _event_head(message, level, name)
    event["correlation_id"] = cid
    event["@timestamp"] = value
    if fields:
        event["labels"] = _labels(fields)
    if name is None and service is not None:  # the source's, last (``text_event`` adds it)
        name = service[0]
        event["service"] = {"name": name}
    return _dumps(event), ms, cid, name, None if level is None else event["log"]["level"]


BUILTIN: dict[str, TextParser] = {"talk": talk, "logfmt": logfmt, "logback": logback, "nginx": nginx}
# the service of a format's lines when the line names none and the source declares none
DEFAULT_SERVICE: dict[TextParser, str] = {nginx: "nginx"}
_NGINX_SERVICE = ("nginx", '"nginx"')
# a declared format's writer of documents without an event (``LineFormat.doc_writer``): (line, the source's
# service (name, as JSON text) or None) -> ``TextDoc``, or None for a line to read alone
DocWriter = Callable[[str, "tuple[str, str] | None"], "TextDoc | None"]


def _whole_event_doc(parse: TextParser) -> DocWriter:
    """The writer for a format whose parser builds the whole event (talk, logback): the event made and stored as
    ``LineFormat.text_event`` + ``make_record`` would (``@timestamp`` after the parser's members, then the source's
    service), for a line with a valid ID and a time."""

    def write(line: str, service: tuple[str, str] | None) -> TextDoc | None:
        parsed = parse(line)
        if parsed is None:
            return None
        event, ms = parsed
        cid = event.get("correlation_id")
        if cid is None or ms is None or not MIN_MS <= ms <= MAX_MS:
            return None
        event["@timestamp"] = clock.iso(ms)
        named = event.get("service")
        if named is not None:
            name = named["name"]
        elif service is not None:
            name = service[0]
            event["service"] = {"name": name}
        else:
            name = None
        return _dumps(event), ms, cid, name, event["log"]["level"]

    return write


DOC_WRITERS: dict[TextParser, DocWriter] = {
    nginx: nginx_doc,
    logfmt: logfmt_doc,
    talk: _whole_event_doc(talk),
    logback: _whole_event_doc(logback),
}
