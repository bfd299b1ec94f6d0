"""Pattern engine: invalid patterns rejected with position and reason, and the engine's choices on the
points the AWS docs leave open (alerts/README.md, "Engine choices")."""

from __future__ import annotations

import orjson
import pytest
from corrtrace.alerts import PatternError, compile_pattern

INVALID = [
    # (pattern, position, words in the reason)
    ("%something!%", 10, "'!' is not supported"),
    ("%(ab)%", 1, "no groups"),
    ("%ab", 0, "unterminated regular expression"),
    ("%é%", 1, "not supported"),
    ("{ $.level = ", 12, "expected a value"),
    ("{ $.level = ERROR", 17, "missing closing '}'"),
    ("{ $.user IS NOT NULL }", 12, "'IS NOT' is not supported"),
    ("{ $.user EXISTS }", 9, "'EXISTS' is not supported"),
    ("{ $.a = 1 AND $.b = 2 }", 10, "expected '&&', '||' or '}' but found 'AND'"),
    ("{ $.latency > abc }", 14, "needs a number"),
    ("{ level = 1 }", 2, "selector starting with '$'"),
    ("{ $.a[*].b[*] = 1 }", 2, "at most one wildcard"),
    ("{ $.a[*] = 1 && $.b[*] = 1 && $.c[*] = 1 && $.d[*] = 1 }", 44, "at most 3 wildcard"),
    ("{ $.a = %x% && $.b = %y% && $.c = %z% }", 37, "at most 2 regular expressions"),
    ("{ $.a = foo@bar }", 11, "not allowed unquoted"),
    ("[a, ..., b, ...]", 12, "only one '...'"),
    ("[a=1 && || a=2, b]", 8, "expected a field name"),
    ("[a, b", 5, "missing closing ']'"),
    ("[a, a]", 0, "used twice"),
    ("[ERROR]x", 7, "unexpected text after the closing ']'"),
    ("ERROR [foo]", 6, "must be enclosed in double quotes"),
    ('"ERROR" - "Exiting"', 9, "directly before its term"),
    ('"unterminated', 0, "unterminated quoted string"),
    ("ERROR%", 5, "must be enclosed in double quotes"),
    ("%a% tail", 4, "must be the whole filter pattern"),
    ("{ $. = 1 }", 4, "expected a property name"),
    ("{ $.a[x] = 1 }", 6, "expected an array index"),
]


@pytest.mark.parametrize(("pattern", "position", "reason"), INVALID)
def test_invalid_pattern_names_position_and_reason(pattern: str, position: int, reason: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern)
    assert info.value.position == position, str(info.value)
    assert reason in info.value.reason
    assert f"position {position}" in str(info.value)


def test_pattern_longer_than_1024_characters_is_rejected() -> None:
    with pytest.raises(PatternError, match="longer than 1024"):
        compile_pattern("a" * 1025)


def test_regex_escapes_and_whitespace_class() -> None:
    assert compile_pattern(r"%\d{3}%").matches("code 404")
    assert not compile_pattern(r"%^\d{3}$%").matches("code 404")
    assert compile_pattern(r"%a\sb%").matches("a\tb")
    assert not compile_pattern(r"%a\sb%").matches("a\rb")  # \s is tab, space, newline only
    assert compile_pattern(r"%\w+@\w+%").matches("mail bob@example")
    assert compile_pattern("%a{,2}c%").matches("xc")
    assert compile_pattern(r"%[^0-9]%").matches("12a")


def test_regex_space_flag() -> None:
    with pytest.raises(PatternError):
        compile_pattern("%^shutting down%")
    assert compile_pattern("%^shutting down%", allow_regex_space=True).matches("shutting down now")


def test_terms_are_case_sensitive_substrings() -> None:
    assert compile_pattern("ERROR").matches("ERRORCODE")
    assert not compile_pattern("Error").matches("ERROR")
    assert compile_pattern("-INFO").matches("DEBUG x")
    assert not compile_pattern("-INFO").matches("INFO x")


def test_mid_string_star_is_literal_in_json_values() -> None:  # open point: 2018 text says literal
    pattern = compile_pattern('{ $.e = "Ev*ent" }')
    assert pattern.matches('{"e": "Ev*ent"}')
    assert not pattern.matches('{"e": "EvXent"}')


def test_json_value_nodes_and_types() -> None:
    assert not compile_pattern("{ $.a = x }").matches('{"a": {"x": 1}}')
    assert not compile_pattern("{ $.a != x }").matches('{"a": {"x": 1}}')
    assert not compile_pattern("{ $.a != x }").matches('{"b": 1}')  # absent: neither = nor !=
    assert compile_pattern('{ $.code = "400" }').matches('{"code": 400}')
    assert not compile_pattern("{ $.flag > 0 }").matches('{"flag": true}')
    assert compile_pattern("{ $.['cluster.name'] = \"prod*\" }").matches('{"cluster.name": "prod-eu"}')
    assert compile_pattern("{ $['a.b'] = 1 }").matches('{"a.b": 1}')
    assert compile_pattern("{ $.* = UpdateTrail }").matches('{"x": "UpdateTrail"}')
    assert compile_pattern("{ $.a[*] NOT EXISTS }").matches('{"a": []}')
    assert not compile_pattern("{ $.a = 1 }").matches("[1, 2]")
    assert compile_pattern('{ $.level = "ERROR" || $.level = "FATAL" && $.latency > 500 }').matches(
        '{"level": "ERROR", "latency": 10}'
    )


def test_json_pattern_on_preparsed_event_equals_raw() -> None:
    pattern = compile_pattern('{ $.event.outcome = "failure" && $.http.response.status_code >= 500 }')
    event = {"event": {"outcome": "failure"}, "http": {"response": {"status_code": 503}}}
    assert pattern.matches_parsed(event)
    assert pattern.matches(orjson.dumps(event).decode())
    assert pattern.test("ignored", event)
    event["http"]["response"]["status_code"] = 200  # type: ignore[index]
    assert not pattern.matches_parsed(event)


def test_space_delimited_field_count_modes() -> None:
    exact = compile_pattern("[w1=ERROR, w2]")
    rest = compile_pattern("[w1=ERROR, w2]", delimited_mode="rest")
    assert exact.matches("ERROR message")
    assert not exact.matches("ERROR WARN message")
    assert rest.matches("ERROR WARN message")
    assert rest.extract("ERROR WARN message") == {"$w1": "ERROR", "$w2": "WARN message"}
    assert compile_pattern("[]").matches("anything at all")
    assert compile_pattern("[w1=ERROR || w1=WARN, w2]").matches("WARN message")
    assert not compile_pattern("[w1=ERROR || w1=WARN, w2]").matches("INFO message")


def test_space_delimited_numbers_and_strings() -> None:
    assert compile_pattern("[a, b=200]").matches("x 200.0")
    assert not compile_pattern("[a, b>10]").matches("x abc")
    assert compile_pattern('[a, b="two words"]').matches('x "two words"')
    assert compile_pattern("[a, b!=4*]").matches("x 500")
    assert compile_pattern("[a, b=%^5\\d\\d$%]").matches("x 503")


def test_match_all_forms() -> None:
    for text in ("", "   ", '" "', '""'):
        assert compile_pattern(text).kind == "all"
        assert compile_pattern(text).matches("anything")
