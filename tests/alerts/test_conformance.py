"""Conformance: (pattern, event, expected) cases whose outcome an AWS documentation page states.

Sources (cited per case by key):
- CUR: https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html (current page:
  #matching-terms-unstructured-log-events, #matching-terms-json-log-events, #regex-expressions,
  #matching-term-space-delimited-log-events)
- MF: https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntaxForMetricFilters.html
- G2020: https://github.com/awsdocs/amazon-cloudwatch-logs-user-guide doc_source/FilterAndPatternSyntax.md
  (2020-09 text, commit 5ae5c9a)
Cases on the points the docs leave open (alerts/README.md, "Engine choices") are NOT here; they live in
test_patterns.py as engine choices.
"""

from __future__ import annotations

import orjson
import pytest
from corrtrace.alerts import compile_pattern

CUR = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html"
CUR_U = CUR + "#matching-terms-unstructured-log-events"
CUR_J = CUR + "#matching-terms-json-log-events"
CUR_R = CUR + "#regex-expressions"
CUR_S = CUR + "#matching-term-space-delimited-log-events"
MF = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntaxForMetricFilters.html"
G2020 = "awsdocs/amazon-cloudwatch-logs-user-guide doc_source/FilterAndPatternSyntax.md@5ae5c9a"

# Events used by the pages.
E_400 = "[ERROR 400] BAD REQUEST"
E_401 = "[ERROR 401] UNAUTHORIZED REQUEST"
E_419 = "[ERROR 419] MISSING ARGUMENTS"
E_420 = "[ERROR 420] INVALID ARGUMENTS"
OR1, OR2, OR3 = "ERROR WARN message", "ERROR message", "WARN message"
TRAIL = orjson.dumps(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
    }
).decode()
USERS = orjson.dumps(
    {
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
    }
).decode()
APACHE_200 = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534'
APACHE_500 = '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 500 5324'
APACHE_200B = '127.0.0.1 - frank [10/Oct/2000:13:50:35 -0700] "GET /apache_pb.gif HTTP/1.0" 200 4355'
APACHE_404 = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
APACHE_403 = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 403 1534'


def j(obj: object) -> str:
    return orjson.dumps(obj).decode()


CASES: list[tuple[str, str, bool, str]] = [
    # --- unstructured terms -------------------------------------------------------------------------------
    ('"ERROR"', "[ERROR] A fatal exception has occurred", True, G2020),
    ('"ERROR"', "Exiting with ERRORCODE: -1", True, G2020),
    ("ERROR Exception", "[ERROR] Caught IllegalArgumentException", True, G2020),
    ("ERROR Exception", "[ERROR] Unhandled Exception", True, G2020),
    ("Failed to process the request", "[WARN] Failed to process the request", True, G2020),
    ("Failed to process the request", "[ERROR] Unable to continue: Failed to process the request", True, G2020),
    ("ERROR", OR1, True, G2020),
    ("ERROR", OR2, True, G2020),
    ("ERROR", OR3, False, G2020),
    ("?ERROR ?WARN", OR1, True, G2020),
    ("?ERROR ?WARN", OR2, True, G2020),
    ("?ERROR ?WARN", OR3, True, G2020),
    ("ERROR WARN", OR1, True, G2020),
    ("ERROR WARN", OR2, False, G2020),
    ("ERROR WARN", OR3, False, G2020),
    ("ERROR -WARN", OR1, False, G2020),
    ("ERROR -WARN", OR2, True, G2020),
    ("ERROR -WARN", OR3, False, G2020),
    ('" "', E_400, True, CUR_U),
    ('" "', E_420, True, CUR_U),
    ("", E_401, True, CUR_U),
    ("ERROR", E_400, True, CUR_U),
    ("ERROR", E_419, True, CUR_U),
    ("ERROR ARGUMENTS", E_400, False, CUR_U),
    ("ERROR ARGUMENTS", E_401, False, CUR_U),
    ("ERROR ARGUMENTS", E_419, True, CUR_U),
    ("ERROR ARGUMENTS", E_420, True, CUR_U),
    ("ERROR -ARGUMENTS", E_400, True, CUR_U),
    ("ERROR -ARGUMENTS", E_401, True, CUR_U),
    ("ERROR -ARGUMENTS", E_419, False, CUR_U),
    ("?ERROR ?ARGUMENTS", E_420, True, CUR_U),
    ("?ERROR ?ARGUMENTS REQUEST", "[INFO] REQUEST FAILED", True, CUR_U),
    ("?ERROR ?ARGUMENTS REQUEST", E_419, False, CUR_U),
    ('"INTERNAL SERVER ERROR"', "[ERROR 500] INTERNAL SERVER ERROR", True, CUR_U),
    ('"INTERNAL SERVER ERROR"', E_400, False, CUR_U),
    ('"ERROR"', "Exiting with ERRORCODE: -1", True, CUR_U),
    ("?Error ?fatal", "[ERROR] Caught IllegalArgumentException", False, CUR_U),
    ('"[ERROR]" Exception', "[ERROR] Terminating the application", False, CUR_U),
    # --- regular expressions ------------------------------------------------------------------------------
    ("%AUTHORIZED%", E_401, True, CUR_R),
    ("%AUTHORIZED%", "[SUCCESS 200] AUTHORIZED REQUEST", True, CUR_R),
    ("%AUTHORIZED%", E_400, False, CUR_R),
    (r"%\x28%", "call(1)", True, CUR_R),
    (r"%\x28%", "no parenthesis", False, CUR_R),
    ("{ $.eventType = %Trail% }", TRAIL, True, CUR_R),
    ("{ $.eventType = %Bucket% }", TRAIL, False, CUR_R),
    (r"[ip=%127\.0\.0\.[1-9]%, ...]", APACHE_200, True, CUR_R),
    (r"[ip=%127\.0\.0\.[1-9]%, ...]", APACHE_200.replace("127.0.0.1", "127.0.0.0", 1), False, CUR_R),
    # --- JSON ---------------------------------------------------------------------------------------------
    ("{$.foo = bar}", j({"foo": "bar"}), True, G2020),
    ("{$.foo = bar}", j({"foo": "baz"}), False, G2020),
    ("{$.foo = baz }", j({"foo": "bar"}), False, G2020),
    ("{$.foo = baz }", j({"foo": "baz"}), True, G2020),
    ("{$.foo = bar || $.foo = baz }", j({"foo": "bar"}), True, G2020),
    ("{$.foo = bar || $.foo = baz }", j({"foo": "baz"}), True, G2020),
    ('{ $.eventType = "UpdateTrail" }', TRAIL, True, CUR_J),
    ("{ $.sourceIPAddress != 123.123.* }", TRAIL, True, CUR_J),
    ("{ $.sourceIPAddress != 111.111.* }", TRAIL, False, CUR_J),
    ('{ $.arrayKey[0] = "value" }', TRAIL, True, CUR_J),
    ('{ $.arrayKey[1] = "value" }', TRAIL, False, CUR_J),
    ("{ $.objectList[1].id = 2 }", TRAIL, True, CUR_J),
    ("{ $.objectList[0].id = 2 }", TRAIL, False, CUR_J),
    ("{ $.SomeObject IS NULL }", TRAIL, True, CUR_J),
    ("{ $.eventType IS NULL }", TRAIL, False, CUR_J),
    ("{ $.SomeOtherObject NOT EXISTS }", TRAIL, True, CUR_J),
    ("{ $.SomeObject NOT EXISTS }", TRAIL, False, CUR_J),
    ("{ $.ThisFlag IS TRUE }", TRAIL, True, CUR_J),
    ("{ $.ThisFlag IS FALSE }", TRAIL, False, CUR_J),
    ('{ $.arrayKey[*] = "another value" }', TRAIL, True, CUR_J),
    ("{ $.objectList[*].id = 2 }", TRAIL, True, CUR_J),
    ("{ $.objectList[*].id = 3 }", TRAIL, False, CUR_J),
    ('{ $.eventType = "*" }', TRAIL, True, CUR_J),
    ("{ $.eventName = *Event }", j({"eventName": "PutEvent"}), True, G2020),
    ("{ $.eventName = *Event }", j({"eventName": "GetEvent"}), True, G2020),
    ("{ $.eventName = Event* }", j({"eventName": "EventId"}), True, G2020),
    ("{ $.eventName = Event* }", j({"eventName": "EventName"}), True, G2020),
    ("{ $.eventName = Event* }", j({"eventName": "PutEvent"}), False, G2020),
    ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', USERS, True, G2020),
    ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', USERS, False, G2020),
    (
        '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }',
        USERS,
        True,
        G2020,
    ),
    (
        '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }',
        USERS,
        False,
        G2020,
    ),
    ("{ $.coordinates[0][1] = 1 }", USERS, True, CUR_J),
    ("{ $.users = 1 }", j({"users": [1, 2, 3]}), False, G2020),
    ("{ $.users != 1 }", j({"users": [1, 2, 3]}), False, G2020),
    ("{ $.latency >= 500 }", j({"latency": 500}), True, G2020),
    ("{ $.latency >= 500 }", j({"latency": 499}), False, G2020),
    ("{ $.numbers[0] < 10e3 }", j({"numbers": [9999]}), True, G2020),
    ("{ $.numbers[0] < 10e3 }", j({"numbers": [10000]}), False, G2020),
    ("{ $.numbers[0] < 10e-3 }", j({"numbers": [0.001]}), True, G2020),
    ("{ $.numbers[0] < 10e-3 }", j({"numbers": [0.01]}), False, G2020),
    ("{ $.processes[4].averageRuntime <= 55.5 }", j({"processes": [{}] * 4 + [{"averageRuntime": 55.5}]}), True, G2020),
    ("{ $.processes[4].averageRuntime <= 55.5 }", j({"processes": [{}] * 4 + [{"averageRuntime": 56}]}), False, G2020),
    ("{ $.errorCode = 400 }", j({"errorCode": 400}), True, G2020),
    ("{ $.errorCode = 400 }", j({"errorCode": 401}), False, G2020),
    ("{ $.errorCode != 500 }", j({"errorCode": 400}), True, G2020),
    ("{ $.errorCode != 500 }", j({"errorCode": 500}), False, G2020),
    ("{ $.latency > +1000 }", j({"latency": 1001}), True, G2020),
    ("{ $.latency > +1000 }", j({"latency": 1000}), False, G2020),
    ('{ $.eventType = "UpdateTrail" }', "UpdateTrail is not JSON", False, CUR_J),
    ("{ $.latency = * }", j({"latency": 50}), True, MF),
    ("{ $.latency = * }", j({"duration": 50}), False, MF),
    # --- space-delimited ----------------------------------------------------------------------------------
    ("[ip, user, username, timestamp, request, status_code, bytes]", APACHE_200, True, G2020),
    ("[..., status_code, bytes]", APACHE_200, True, G2020),
    ("[ip, user, ..., status_code, bytes]", APACHE_500, True, G2020),
    ("[ip, user, ...]", APACHE_200B, True, G2020),
    ("[ip, user, username, timestamp, request, status_code, bytes > 1000]", APACHE_200, True, G2020),
    ("[ip, user, username, timestamp, request, status_code, bytes > 5000]", APACHE_200B, False, G2020),
    ("[ip, user, username, timestamp, request, status_code = 200, bytes]", APACHE_200, True, G2020),
    ("[ip, user, username, timestamp, request, status_code = 200, bytes]", APACHE_500, False, G2020),
    ("[ip, user, username, timestamp, request, status_code = 4*, bytes]", APACHE_404, True, G2020),
    ("[ip, user, username, timestamp, request, status_code = 4*, bytes]", APACHE_500, False, G2020),
    ("[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]", APACHE_404, True, G2020),
    ("[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]", APACHE_200, False, G2020),
    (
        "[ip, user, username, timestamp, request, status_code = 4* && status_code != 403, bytes]",
        APACHE_404,
        True,
        G2020,
    ),
    (
        "[ip, user, username, timestamp, request, status_code = 4* && status_code != 403, bytes]",
        APACHE_403,
        False,
        G2020,
    ),
    ("[..., request=*.html*, status_code=4*,]", APACHE_404, True, G2020),
    ("[..., request=*.html*, status_code=4*,]", APACHE_200, False, G2020),
    ("[ip, identity, user, timestamp, request, status_code=4*, size]", APACHE_404, True, CUR_S),
    ("[..., size]", APACHE_404, True, MF),
]


def test_there_are_at_least_80_cases() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize(("pattern", "event", "expected", "source"), CASES)
def test_documented_outcome(pattern: str, event: str, expected: bool, source: str) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.matches(event) is expected, f"{pattern!r} on {event!r} (source: {source})"
    if compiled.is_json and event.startswith("{"):
        assert compiled.matches_parsed(orjson.loads(event)) is expected


def test_extracted_values_documented_for_space_delimited() -> None:
    # G2020 "Using Metric Filters to Extract Values from Space-Delimited Log Events": positions 1-4 under the
    # ellipsis, $request, $status_code, and the empty trailing field as $7.
    values = compile_pattern("[..., request=*.html*, status_code=4*,]").extract(APACHE_404)
    assert values == {
        "$1": "127.0.0.1",
        "$2": "-",
        "$3": "frank",
        "$4": "10/Oct/2000:13:25:15 -0700",
        "$request": "GET /index.html HTTP/1.0",
        "$status_code": "404",
        "$7": "1534",
    }


def test_extracted_values_named_fields_current_page() -> None:
    values = compile_pattern("[ip, identity, user, timestamp, request, status_code=4*, size]").extract(APACHE_404)
    assert values == {
        "$ip": "127.0.0.1",
        "$identity": "-",
        "$user": "frank",
        "$timestamp": "10/Oct/2000:13:25:15 -0700",
        "$request": "GET /index.html HTTP/1.0",
        "$status_code": "404",
        "$size": "1534",
    }


def test_unstructured_and_json_extract_nothing() -> None:
    assert compile_pattern("ERROR").extract("ERROR x") == {}
    assert compile_pattern("ERROR").extract("nothing") is None
