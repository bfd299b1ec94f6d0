"""Non-JSON lines (the talk's format, logfmt, logback, nginx, a user's regex) and other stacks' JSON field
names become corrtrace's ECS fields, so `corrtrace search <id>` finds them (collector/README.md, "Formats")."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import re2
import yaml
from click.testing import CliRunner
from corrtrace.collector.parsers import LineFormat, build_format, clock
from corrtrace.collector.parsers.text import (
    LOGBACK,
    LOGFMT_MAX_PAIRS,
    NGINX,
    NGINX_PLAIN,
    TALK,
    logfmt,
    logfmt_fields,
    talk,
)
from corrtrace.collector.record import make_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corrtrace.cli import main
from corrtrace.ids import is_valid
from corrtrace.timestamps import format_timestamp, parse_timestamp_ms

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
NGINX_LINE = (
    '127.0.0.1 - - [30/Nov/2026:12:00:00 +0000] "GET /api/products?page=2 HTTP/1.1" 502 157 "-" '
    '"curl/7.88.1" "01J9ZK3Q8X-edge-1" 0.012 1796040000.250'
)


def event_of(line: str | bytes, fmt: Any = None) -> dict[str, Any]:
    data = line.encode() if isinstance(line, str) else line
    return make_record("t", 0, 1, data, 0, fmt=fmt)[1]


def _run(args: list[str], **kwargs: Any) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False, **kwargs)


def test_the_talks_format_fills_the_ecs_fields() -> None:
    event = event_of("09-02-2015 15:03:26 checkout-svc ERROR [uuid-123] card declined")
    assert event == {
        "@timestamp": "2015-02-09T15:03:26.000Z",
        "log": {"level": "ERROR"},
        "message": "card declined",
        "correlation_id": "uuid-123",
        "service": {"name": "checkout-svc"},
    }


def test_logfmt_lines_from_the_documented_formats() -> None:
    lines = (FIXTURES / "logfmt.log").read_text().splitlines()
    heroku, slog, logrus, escaped = (event_of(line) for line in lines)
    assert heroku["correlation_id"] == "9bd5f5b0-6e2a-4b39-b5b4-1d2f0d6c1a11"  # request_id, a default alias
    assert heroku["labels"]["request_id"] == heroku["correlation_id"] and heroku["labels"]["status"] == "200"
    assert heroku["log"]["level"] == "INFO"
    assert slog["@timestamp"] == "2022-11-08T20:28:26.000Z" and slog["message"] == "hello"
    assert slog["correlation_id"] == "01J9ZK3Q8X-go-1" and slog["labels"] == {"count": "3"}
    assert logrus["@timestamp"] == "2015-03-26T05:27:38.000Z" and logrus["message"] == "Started observing beach"
    assert logrus["log"]["level"] == "DEBUG"
    assert escaped["message"] == 'card "declined" by issuer' and escaped["service"] == {"name": "payment-go"}
    assert logfmt("just words here") is None and logfmt('a="unclosed b=c') is None


def test_a_logfmt_time_with_unicode_digits_is_unreadable_not_an_error() -> None:
    """``"1²3".isdigit()`` is true but ``int()`` refuses it: the line is kept, its time is the ingest time."""
    event = event_of("time=2026-11-30T12:00:05.1\u00b23Z level=info msg=x correlation_id=c-go-1")
    assert event["@timestamp"] == "1970-01-01T00:00:00.000Z" and event["labels"]["time"].endswith("\u00b23Z")
    assert event["correlation_id"] == "c-go-1" and event["message"] == "x"


def test_an_nginx_time_zone_with_unicode_digits_is_unreadable_not_an_error() -> None:
    """``$time_local``'s offset ``+0²00``: the line is an nginx line all the same, its time the ingest time (it
    raised ``ValueError`` out of ``make_record``, which stopped the reader)."""
    plain = NGINX_LINE.rsplit(' "', 1)[0] + ' "-"'  # no $msec: the time is $time_local's
    line = plain.replace("+0000]", "+0\u00b200]")
    assert line != plain
    event = event_of(line)
    assert event["@timestamp"] == "1970-01-01T00:00:00.000Z" and event["http"]["response"]["status_code"] == 502


def test_a_parser_that_raises_is_a_format_the_line_is_not_in(caplog: pytest.LogCaptureFixture) -> None:
    """A parser's bug (an exception on some line) must not stop the reader, which would stop on the same line
    again after every restart: the next format reads the line, or it is kept as text; said once, without the
    line or the exception's message (they are untrusted)."""

    def broken(line: str) -> Any:
        raise ValueError(f"cannot read {line!r}")

    fmt = LineFormat("custom", [broken, talk])
    secret = "09-02-2015 15:03:24 ui-svc INFO [uuid-123] card 4111-1111"
    with caplog.at_level("WARNING", logger="corrtrace.collector"):
        record, event = make_record("src", 0, 1, secret.encode(), fmt=fmt)
        other = make_record("src", 1, 2, b"no format reads this", 0, fmt=fmt)[1]
    assert event["correlation_id"] == "uuid-123" and record.correlation_id == "uuid-123"
    assert other["log"]["original"] == "no format reads this"
    warnings = [r.getMessage() for r in caplog.records if "format failed" in r.getMessage()]
    assert len(warnings) == 1 and "broken" in warnings[0] and "ValueError" in warnings[0]
    assert "4111" not in caplog.text and "no format" not in caplog.text


def test_logback_lines_and_an_empty_mdc() -> None:
    first, second, empty = (
        event_of(line, build_format("logback", service="shipping-java"))
        for line in (FIXTURES / "logback.log").read_text().splitlines()
    )
    assert first["correlation_id"] == "01J9ZK3Q8X-java-1" and first["log"] == {
        "level": "ERROR",
        "logger": "com.example.Checkout",
    }
    assert first["@timestamp"] == "2026-11-30T12:00:30.307Z" and first["process"]["thread"]["name"] == "main"
    assert second["service"] == {"name": "shipping-java"} and second["message"] == "shipment booked"
    assert "correlation_id" not in empty and empty["log"]["level"] == "WARN"


def test_nginx_combined_with_the_id_appended() -> None:
    event = event_of(NGINX_LINE)
    assert event["correlation_id"] == "01J9ZK3Q8X-edge-1"
    assert event["@timestamp"] == "2026-11-30T12:00:00.238Z"  # $msec - $request_time: when the request arrived
    assert event["http"]["response"] == {"status_code": 502, "body": {"bytes": 157}}
    assert event["http"]["request"]["method"] == "GET" and event["url"]["path"] == "/api/products"
    assert event["log"]["level"] == "ERROR" and event["event"]["duration"] == 12_000_000
    assert event["service"] == {"name": "nginx"}  # unless the source declares its service
    assert event_of(NGINX_LINE, build_format("nginx", service="edge"))["service"] == {"name": "edge"}
    absurd = (NGINX_LINE.rsplit(" ", 2)[0] + " 9 9" + "9" * 400, NGINX_LINE.replace(" 157 ", " 1" + "0" * 5000 + " "))
    for huge in absurd:
        assert event_of(huge)["log"]["original"] == huge  # absurd numbers: not this format, kept as they are
    plain = event_of(NGINX_LINE.rsplit(' "', 1)[0] + ' "-"')  # no id, no timings: $time_local
    assert "correlation_id" not in plain and plain["@timestamp"] == "2026-11-30T12:00:00.000Z"


def test_a_line_no_format_matches_is_kept_as_before() -> None:
    assert event_of("something happened", build_format("auto")) == {
        "message": "something happened",
        "log": {"original": "something happened"},
        "@timestamp": "1970-01-01T00:00:00.000Z",
    }
    talk = "09-02-2015 15:03:24 ui-svc INFO [uuid-123] hello"
    assert "correlation_id" not in event_of(talk, build_format("json"))  # json: no text parser
    assert "correlation_id" not in event_of(talk, build_format("nginx"))  # only the declared one


def test_other_stacks_json_field_names_are_mapped_and_kept() -> None:
    pino = b'{"level":"info","time":1764504000123,"msg":"order placed","correlationId":"c-node-1","app":"orders-node"}'
    event = event_of(pino)
    assert event["correlation_id"] == "c-node-1" and event["correlationId"] == "c-node-1"
    assert event["service"] == {"name": "orders-node"} and event["app"] == "orders-node"
    assert event["@timestamp"] == "2025-11-30T12:00:00.123Z" and event["message"] == "order placed"
    logstash = (
        b'{"@timestamp":"2026-11-30T12:00:00.000Z","message":"hi","logger_name":"c.e.Api",'
        b'"level":"WARN","x_correlation_id":"c-java-9"}'
    )
    event = event_of(logstash)
    assert event["correlation_id"] == "c-java-9" and event["service"] == {"name": "c.e.Api"}
    assert event["log"] == {"level": "WARN"}
    traced = b'{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","message":"x"}'
    assert "correlation_id" not in event_of(traced)  # traceId only when asked
    asked = build_format("auto", id_aliases=["traceId"])
    assert event_of(traced, asked)["correlation_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    own = b'{"@timestamp":"2026-11-30T12:00:00.000Z","correlation_id":"own","requestId":"other","service":{"name":"a"}}'
    record, event = make_record("t", 0, 1, own, 0)
    assert record.raw == own and event["correlation_id"] == "own"  # corrtrace's own lines are untouched
    assert event_of(b'{"message":"x","service":"orders"}')["service"] == {"name": "orders"}
    assert event_of(b'{"message":"x"}', build_format("json", service="edge"))["service"] == {"name": "edge"}
    assert "correlation_id" not in event_of(b'{"requestId":"has spaces in it"}')  # not a valid id: not adopted


def test_a_user_regex_format_with_a_time_format() -> None:
    fmt = build_format(
        r"(?P<timestamp>\S+ \S+) \| (?P<level>\w+) \| (?P<correlation_id>[\w-]+) \| "
        r"(?P<message>.*?) \| took=(?P<took>\d+)",
        service="billing",
        time_format="%d/%m/%Y %H:%M:%S",
    )
    event = event_of("30/11/2026 12:00:05 | warn | req-77 | slow charge | took=950", fmt)
    assert event == {
        "@timestamp": "2026-11-30T12:00:05.000Z",
        "log": {"level": "WARN"},
        "correlation_id": "req-77",
        "message": "slow charge",
        "labels": {"took": "950"},
        "service": {"name": "billing"},
    }
    assert event_of("no match", fmt)["message"] == "no match"


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("(?P<correlation_id>[a-z", "nor a valid regular expression"),
        (r"(\w+) (\w+)", "has no named group"),
        (r"(?P<correlation_id>\w+)\1", "nor a valid regular expression"),  # backreferences: not linear, refused
    ],
)
def test_a_bad_user_format_is_one_clear_line_at_start_up(tmp_path: Path, fmt: str, reason: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "data_dir": str(tmp_path / "d"),
                    "sources": [{"path": str(tmp_path / "a.log"), "format": fmt}],
                }
            }
        )
    )
    result = _run(["collect", "--config", str(config), "--once"])
    assert result.exit_code == 2
    assert result.output.startswith("corrtrace: collector.sources[0].format: ") and reason in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = _run(["parse-test", "--format", fmt, "x"])
    assert result.exit_code == 2 and reason in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("time_format", "reason"), [("%Q", "'Q' is a bad directive"), ("%d/%m/%Y %", "stray %")], ids=["%Q", "stray"]
)
def test_a_bad_time_format_is_one_clear_line_at_start_up(tmp_path: Path, time_format: str, reason: str) -> None:
    """Accepted before, it gave every line the ingest time instead of its own, and said nothing."""
    fmt = r"(?P<timestamp>\S+ \S+) (?P<message>.*)"
    source = {"path": str(tmp_path / "a.log"), "format": fmt, "time_format": time_format}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"collector": {"data_dir": str(tmp_path / "d"), "sources": [source]}}))
    result = _run(["collect", "--config", str(config), "--once"])
    assert result.exit_code == 2
    assert result.output.startswith("corrtrace: collector.sources[0].") and reason in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = _run(["parse-test", "--format", fmt, "--time-format", time_format, "30/11/2026 12:00:05 x"])
    assert result.exit_code == 2 and reason in result.output and "Traceback" not in result.output


def test_parse_test_prints_what_a_line_becomes() -> None:
    result = _run(["parse-test", "09-02-2015 15:03:24 ui-svc INFO [uuid-123] ....", NGINX_LINE])
    assert result.exit_code == 0
    talk, edge = (orjson.loads(line) for line in result.output.splitlines())
    assert talk["correlation_id"] == "uuid-123" and talk["service"]["name"] == "ui-svc"
    assert edge["http"]["response"]["status_code"] == 502
    result = _run(
        [
            "parse-test",
            "--format",
            "logback",
            "--service",
            "checkout-java",
            (FIXTURES / "logback.log").read_text().splitlines()[0] + "\\njava.lang.IllegalStateException: x"
            "\\n\\tat Checkout.charge(Checkout.java:10)",
        ]
    )
    joined = orjson.loads(result.output)
    assert joined["message"].splitlines()[1:] == [
        "java.lang.IllegalStateException: x",
        "\tat Checkout.charge(Checkout.java:10)",
    ]
    assert joined["log"]["flags"] == ["multiline"] and joined["service"]["name"] == "checkout-java"


def test_collect_format_option_and_per_source_formats(tmp_path: Path) -> None:
    """One request through plain-text, logfmt, logback and other-stack JSON services is one flow by default."""
    cid = "01J9ZK3Q8X-flow-1"
    (tmp_path / "ui.log").write_text(f"30-11-2026 12:00:00.100 ui-svc INFO [{cid}] GET /checkout\n")
    (tmp_path / "pay.log").write_text(f"time=2026-11-30T12:00:00.200Z level=info msg=charged correlation_id={cid}\n")
    (tmp_path / "ship.log").write_text(f"2026-11-30 12:00:00,300 [exec-1] INFO  c.e.Ship - [{cid}] booked\n")
    (tmp_path / "node.log").write_text(
        f'{{"time":"2026-11-30T12:00:00.400Z","msg":"stock reserved","correlationId":"{cid}","app":"stock-node"}}\n'
    )
    (tmp_path / "custom.log").write_text(f"12:00:00.500|audit|{cid}|recorded\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "data_dir": str(tmp_path / "data"),
                    "sources": [
                        {"path": str(tmp_path / "ui.log")},
                        {"path": str(tmp_path / "pay.log"), "service": "payment-go"},
                        {"path": str(tmp_path / "ship.log"), "format": "logback", "service": "shipping-java"},
                        {"path": str(tmp_path / "node.log")},
                        {
                            "path": str(tmp_path / "custom.log"),
                            "service": "audit",
                            "format": r"(?P<clock>[\d:.]+)\|(?P<kind>\w+)\|(?P<correlation_id>[\w-]+)\|(?P<message>.*)",
                        },
                    ],
                }
            }
        )
    )
    assert _run(["collect", "--config", str(config), "--once"]).exit_code == 0
    found = orjson.loads(_run(["search", cid, "--data-dir", str(tmp_path / "data"), "--json"]).stdout)
    assert [e["service"]["name"] for e in found] == ["ui-svc", "payment-go", "shipping-java", "stock-node", "audit"]
    # --format for a one-off run: the same talk line read as json stays opaque
    other = tmp_path / "other"
    assert (
        _run(["collect", "--once", "--format", "json", "--data-dir", str(other), str(tmp_path / "ui.log")]).exit_code
        == 0
    )
    opaque = _run(["search", cid, "--data-dir", str(other), "--json"])
    assert opaque.exit_code == 1 and "no lines" in opaque.output


# -- the built-in patterns stay linear on hostile input ------------------------------------------------------------
# logfmt's grammar as regular expressions (the reference ``logfmt_fields`` is checked against, below)
LOGFMT_PAIR = re.compile(r'([^\s="]+)=(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s"]*))(?:\s+|$)')
LOGFMT_LINE = re.compile(r'\s*(?:[^\s="]+=(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^\s"]*)(?:\s+|$))+')
PATTERNS = {
    "talk": TALK,
    "logback": LOGBACK,
    "nginx": NGINX,
    "nginx_plain": NGINX_PLAIN,
    "logfmt_pair": LOGFMT_PAIR,
    "logfmt_line": LOGFMT_LINE,
}
# the characters each pattern's quantifiers and delimiters care about: hostile input is made of them
ALPHABETS = {
    "talk": "0123456789-: [] aZ.,\t",
    "logback": "0123456789-: [] INFOab-.,T\t",
    "nginx": '0123456789 -[]"/.:aZ\\?HTP',
    "nginx_plain": '0123456789 -[]"/.:aZ\\?HTP\x01',
    "logfmt_pair": 'ab=" \\\t.',
    "logfmt_line": 'ab=" \\\t.',
}
SIZE = 64_000


def _cpu_seconds(run: Any, repeat: int = 3) -> float:
    """The least CPU time this thread spent in ``run()`` over ``repeat`` runs. CPU time, not wall time: a test
    process descheduled on a loaded machine accrues none, so the bound measures the engine (a linear pattern
    takes milliseconds on 64 KB, a backtracking one seconds to hours) and not the machine's load."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PATTERNS)), data=st.data())
def test_builtin_patterns_are_linear_and_agree_with_re2(name: str, data: Any) -> None:
    """64 KB of a repeated fragment built from the pattern's own delimiters matches (or fails) in milliseconds:
    a backtracking pattern takes seconds to hours here. RE2 (linear by construction) gives the same groups."""
    fragment = data.draw(st.text(alphabet=ALPHABETS[name], min_size=1, max_size=12))
    prefix = data.draw(
        st.sampled_from(
            [
                "",
                "09-02-2015 15:03:24 ",
                "2024-01-15 10:23:45,123 [",
                "1.2.3.4 - - [",
                '1.2.3.4 - - [x] "GET ',
                "09-02-2015 15:03:24 svc INFO [",
                'k="',
            ]
        )
    )
    text = prefix + fragment * (SIZE // len(fragment))
    pattern = PATTERNS[name]
    ours = pattern.match(text)
    elapsed = _cpu_seconds(lambda: pattern.match(text))
    assert elapsed < 0.5, f"{name}: {elapsed:.2f}s of CPU on {text[:40]!r}..."
    theirs = re2.compile(pattern.pattern).match(text)
    assert (ours is None) == (theirs is None)
    if ours is not None and theirs is not None:
        assert ours.groups() == theirs.groups()


@settings(max_examples=15, deadline=None)
@given(fragment=st.text(alphabet='ab=" \\\t.', min_size=1, max_size=8))
def test_logfmt_is_linear_on_hostile_input(fragment: str) -> None:
    text = "time=1 " + fragment * (SIZE // len(fragment))
    assert _cpu_seconds(lambda: logfmt(text)) < 0.5


def _reference_fields(text: str) -> dict[str, str] | None:
    if LOGFMT_LINE.fullmatch(text) is None:
        return None
    return {
        key: (re.sub(r"\\(.)", r"\1", quoted) if "\\" in quoted else quoted) or bare
        for key, quoted, bare in LOGFMT_PAIR.findall(text)[:LOGFMT_MAX_PAIRS]
    }


@settings(max_examples=400, deadline=None)
@given(
    text=st.text(alphabet='ab=" \\\t\n.\u00a0', max_size=40)
    | st.lists(
        st.sampled_from(
            [
                "a=1",
                'b="x y"',
                'c="q\\"d"',
                'k=""',
                "  ",
                "\t",
                "e=",
                '"',
                "\\",
                "x=a=b",
                'f="\\\\"',
                'g="\\\n"',
                "=v",
                "h",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_logfmt_fields_read_exactly_the_grammar(text: str) -> None:
    """One pass gives what the grammar's regular expressions give: the same lines refused, the same pairs."""
    assert logfmt_fields(text) == _reference_fields(text)


@settings(max_examples=600, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "a=1",
                "a=2",
                'b="x y"',
                'm="k=v, {w}: [1]"',
                'k=""',
                "e=",
                "=v",
                "=",
                "x=a=b",
                "h",
                "",
                "t=\x01",
                'c="\t"',
                "u=:,{}[]",
                'q="x"y',
                'q="x""y"',
                'r=x"y"',
                '"',
                "\t",
                "n=null",
            ]
        ),
        max_size=10,
    ).map(" ".join)
)
def test_logfmt_fields_read_through_orjson_are_the_grammars_in_order(text: str) -> None:
    """ASCII lines without a backslash are turned into a JSON object for orjson: the pairs (and their order, a
    repeated key keeping its first place and last value) are the grammar's, whatever JSON makes of ``:,{}[]``,
    control characters, empty keys or values, ``=`` inside values and quotes in the wrong place."""
    ours = logfmt_fields(text)
    reference = _reference_fields(text)
    assert ours == reference
    if ours is not None and reference is not None:
        assert list(ours.items()) == list(reference.items())


def test_logfmt_keeps_the_first_pairs_of_a_long_line() -> None:
    text = " ".join(f'k{i}="v {i}"' if i % 2 else f"k{i}={i}" for i in range(LOGFMT_MAX_PAIRS + 10)) + ' bad"'
    assert logfmt_fields(text) is None  # the whole line is checked, not only the pairs kept
    fields = logfmt_fields(text[:-5])
    assert fields == _reference_fields(text[:-5]) and fields is not None and len(fields) == LOGFMT_MAX_PAIRS


def test_the_builtin_patterns_have_no_backreferences_or_lookaround() -> None:
    for pattern in PATTERNS.values():
        assert not re.search(r"\(\?[=!<]|\\[1-9]", pattern.pattern)


# the nginx pattern captures the id only when it is valid: what the line becomes is what a plain capture + the
# policy's check gave (the reference below), for any token in the id's place
_NGINX_PLAIN = re.compile(
    r'(\S+) - (\S+) \[([^\]]*)\] "([^"]*)" (\d{3}) (\d{1,19}) "([^"]*)" "([^"]*)"'
    r'(?: "?([^"\s]*)"?)?(?: (\d{1,9}(?:\.\d{1,6})?) (\d{1,11}(?:\.\d{1,6})?))?\s*$'
)


@settings(max_examples=300, deadline=None)
@given(token=st.text(alphabet='aZ09-_.:/" \t\u00e9', max_size=140) | st.sampled_from(["-", "a" * 128, "a" * 129]))
def test_nginx_reads_the_id_the_policy_accepts(token: str) -> None:
    line = NGINX_LINE.replace('"01J9ZK3Q8X-edge-1"', token)
    plain = _NGINX_PLAIN.match(line)
    ours = NGINX.match(line)
    assert (ours is None) == (plain is None)
    if ours is not None and plain is not None:
        cid = plain[9]
        expected = cid if cid and cid != "-" and is_valid(cid) else None
        assert event_of(line).get("correlation_id") == expected
        assert ours[13] in (None, cid) and ours.groups()[13:] == plain.groups()[9:]  # after the request's 4


@settings(max_examples=300, deadline=None)
@given(request=st.text(alphabet='GET /?a=HTP1. "\t', max_size=30) | st.sampled_from(["GET /a?b=c HTTP/1.1", "HTTP/"]))
def test_nginx_reads_the_request_as_its_partitions(request: str) -> None:
    """The pattern's method, target, path and version are what ``partition`` gives on the request as a whole
    (method up to the first space, target up to the next, path up to ``?``, the version after ``HTTP/``)."""
    line = NGINX_LINE.replace("GET /api/products?page=2 HTTP/1.1", request)
    plain = _NGINX_PLAIN.match(line)
    assert (NGINX.match(line) is None) == (plain is None)
    if plain is not None:
        method, _, rest = plain[4].partition(" ")
        target, _, version = rest.partition(" ")
        event = event_of(line)
        assert event["message"] == plain[4] + " 502" and event["http"]["request"]["method"] == method
        assert event["url"] == {"original": target, "path": target.partition("?")[0]}
        assert event["http"].get("version") == (version[5:] if version.startswith("HTTP/") else None)


@settings(max_examples=200, deadline=None)
@given(
    second=st.integers(0, 59),
    fraction=st.text(alphabet="0123456789\u0661\u00b2a", min_size=3, max_size=3),
    tail=st.sampled_from(["Z", "z", "+00:00", "Z "]),
)
def test_logfmt_time_reads_as_parse_timestamp_ms(second: int, fraction: str, tail: str) -> None:
    """The per-second cache and the milliseconds table give what ``parse_timestamp_ms`` gives (or nothing where it
    gives nothing), for ASCII and other decimal digits alike."""
    value = f"2026-11-30T12:00:{second:02d}.{fraction}{tail}"
    for _ in range(2):  # cold, then from the cache
        assert clock.rfc3339(value) == parse_timestamp_ms(value)
        ms = clock.canonical(value)  # only corrtrace's own text, which @timestamp can then be as written
        assert ms is None or (ms == parse_timestamp_ms(value) and format_timestamp(ms) == value)
    if tail == "Z" and fraction.isascii() and fraction.isdigit():
        assert clock.canonical(value) is not None


def test_logfmt_fills_a_role_from_its_first_key_and_keeps_the_others() -> None:
    """``msg`` and ``message`` on one line: ``msg`` is the message, ``message`` stays a label (nothing lost)."""
    event = event_of("time=2026-11-30T12:00:05.123Z msg=a message=b lvl=warn level=info app=x service=y")
    assert event["message"] == "a" and event["log"] == {"level": "INFO"} and event["service"] == {"name": "y"}
    assert event["labels"] == {"message": "b", "lvl": "warn", "app": "x"}
    assert event["@timestamp"] == "2026-11-30T12:00:05.123Z"
