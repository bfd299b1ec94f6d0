"""A source's batch of lines through ``make_records`` becomes what ``make_record`` makes of each line alone: the same
records (the stored bytes included) and events, whatever path a line takes; a declared nginx writes its lines'
documents without an event (collector/README.md, "Formats")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from corrtrace.collector.parsers import JoinedLines, LineFormat, build_format, clock, text
from corrtrace.collector.parsers.text import NGINX, NGINX_PLAIN
from corrtrace.collector.pipeline import Pipeline
from corrtrace.collector.record import LinePiece, make_record, make_records
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collector.test_formats import NGINX_LINE, SIZE, _cpu_seconds

NOW = 1_796_040_000_000
FORMATS = {
    "logfmt, a service to escape": build_format("logfmt", service='go "svc"\\'),
    "nginx": build_format("nginx"),
    "talk": build_format("talk"),
    "talk, a service to escape": build_format("talk", service='ui "one"\\'),
    "logback": build_format("logback"),
    "nginx, a service to escape": build_format("nginx", service='edge "one"\\'),
    "auto": build_format("auto"),
    "logfmt": build_format("logfmt"),
    "json": build_format("json"),
}
JSON_LINE = b'{"@timestamp":"2026-11-30T12:00:00.000Z","correlation_id":"c-1","service":{"name":"ui"},"message":"hi"}'
PIECES = [NGINX_LINE.encode()[:40], NGINX_LINE.encode()[40:90], NGINX_LINE.encode()[90:]]


def _lines(texts: list[bytes]) -> list[tuple[str, int, int, bytes]]:
    return [("src", i * 1000, i * 1000 + len(line) + 1, line) for i, line in enumerate(texts)]


def assert_same_as_alone(texts: list[bytes], fmt: LineFormat) -> None:
    """Records and events of the batch are each line's alone, key order included (events compared as bytes)."""
    lines = _lines(texts)
    alone = [make_record(*line, NOW, fmt=fmt) for line in lines]
    records, events = make_records(lines, NOW, fmt, events=True)
    assert [r.to_list() for r in records] == [r.to_list() for r, _ in alone]
    assert [orjson.dumps(e) for e in events] == [orjson.dumps(e) for _, e in alone]
    quiet, none = make_records(lines, NOW, fmt)
    assert none == [] and [r.to_list() for r in quiet] == [r.to_list() for r in records]


def _docs(fmt: LineFormat, texts: list[bytes]) -> list[Any]:
    """What ``make_records`` writes for each of ``texts`` without an event (None: read alone)."""
    write, service = fmt.doc_writer, fmt.doc_service
    assert write is not None
    return [write(line.decode("utf-8", "replace"), service) for line in texts]


TALK_AND_LOGBACK = [
    "09-02-2015 15:03:24 ui-svc INFO [uuid-123] hello",
    "09-02-2015 15:03:24.5 ui-svc warn [uuid-124] lower-case level, a fraction",
    '09-02-2015 15:03:24 ui-svc INFO [bad"id] not a valid id',
    "09-02-2015 15:03:24 ui-svc INFO [] no id",
    "31-02-2015 15:03:24 ui-svc INFO [uuid-125] no such day",
    '09-02-2015 15:03:24 ui-svc INFO [uuid-126] caf\u00e9 \\ "quoted" \x01',
    "2026-11-30 12:00:30,307 [main] ERROR com.example.Checkout - [01J9ZK3Q8X-java-1] charge failed",
    '2026-11-30 12:00:31,002 [exec "7"] INFO  c.e.Shipping - [01J9ZK3Q8X-java-2] a thread to escape',
    "2026-11-30 12:00:31,118 [http-nio-8080-exec-7] WARN  c.e.shipping.ShipmentController - [] no id",
]


def _mixed() -> list[bytes]:
    shared: dict[str, str] = {}
    multiline = JoinedLines(NGINX_LINE.encode() + b"\n  continued")
    multiline.inherited = {"correlation_id": "from-json"}
    return [
        JSON_LINE,
        b'{"msg":"other stack","correlationId":"c-2","app":"node"}',
        NGINX_LINE.encode(),  # written without an event
        NGINX_LINE.replace("curl/7.88.1", "curl\\7").encode(),  # a backslash to escape: read alone
        NGINX_LINE.replace("127.0.0.1 - -", '127.0.0.1 - a"b').encode(),  # a quote in the user
        NGINX_LINE.replace("curl/7.88.1", "curl\x01").encode(),  # a control character
        NGINX_LINE.replace("curl/7.88.1", "caf\xe9 \u2028 \x7f").encode(),  # no escape needed
        NGINX_LINE.encode().replace(b"curl", b"\xffcurl"),  # not UTF-8: replaced
        NGINX_LINE.replace(" 0.012 1796040000.250", "").encode(),  # the time from $time_local
        NGINX_LINE.replace(" 0.012 1796040000.250", "").replace("30/Nov", "31/Feb").encode(),  # no time read
        NGINX_LINE.replace('"01J9ZK3Q8X-edge-1"', '"-"').replace('"-" "curl', '"https://r/" "curl').encode(),
        NGINX_LINE.replace('"GET /api/products?page=2 HTTP/1.1"', '"GET"').encode(),  # no target, no version
        NGINX_LINE.encode() + b"\r",  # a line end kept
        b"hello, not a format",
        b"",
        b'{"a":',  # not JSON after all
        b'  {"correlation_id":"c-3","message":"indented"}',
        b"time=2026-11-30T12:00:00.123Z level=info msg=x correlation_id=c-4",
        *(line.encode() for line in TALK_AND_LOGBACK),
        *(LinePiece.of(piece, shared, n) for n, piece in enumerate(PIECES, 1)),
        multiline,
    ]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_mixed_batch_is_each_line_alone(name: str) -> None:
    assert_same_as_alone(_mixed(), FORMATS[name])


def test_a_declared_nginx_writes_its_lines_documents_without_an_event() -> None:
    fmt = FORMATS["nginx"]
    assert all(f.doc_writer is not None for name, f in FORMATS.items() if name not in ("auto", "json"))
    assert FORMATS["auto"].doc_writer is None and FORMATS["json"].doc_writer is None
    texts = _mixed()
    reads = _docs(fmt, [line for line in texts if line.__class__ is bytes and line[:1] not in (b"{", b" ")])
    assert [read is not None for read in reads] == [
        True,  # the plain line
        False,  # backslash
        False,  # quote in the user
        False,  # control character
        True,  # non-ASCII, U+2028, DEL
        True,  # not UTF-8
        True,  # $time_local
        False,  # no time
        True,  # "-" id, a referrer
        True,  # no target
        True,  # "\r" at the end
        False,  # not nginx
        False,  # empty
        False,  # logfmt
        *[False] * len(TALK_AND_LOGBACK),
    ]
    doc = reads[0]
    assert doc is not None and doc[1:] == (1796040000238, "01J9ZK3Q8X-edge-1", "nginx", "ERROR")


def test_talk_and_logback_lines_with_an_id_and_a_time_are_written_without_an_event() -> None:
    texts = [line.encode() for line in TALK_AND_LOGBACK]
    talk = [read is not None for read in _docs(FORMATS["talk"], texts)]
    logback = [read is not None for read in _docs(FORMATS["logback"], texts)]
    assert talk == [True, True, False, False, False, True, False, False, False]
    assert logback == [False] * 6 + [True, True, False]
    assert _docs(FORMATS["talk"], texts[:1])[0][1:] == (1423494204000, "uuid-123", "ui-svc", "INFO")


def test_a_parser_that_raises_in_a_batch_leaves_the_line_to_be_read_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(line: str, service: str) -> Any:
        raise ValueError(line)

    monkeypatch.setitem(text.DOC_WRITERS, text.nginx, broken)
    assert_same_as_alone([NGINX_LINE.encode(), JSON_LINE], build_format("nginx"))


def test_subscribers_get_the_events_of_documents_written_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW / 1000)  # the pipeline's ingest time: NOW
    pipeline = Pipeline([], [], data_dir=tmp_path)
    seen: list[dict[str, Any]] = []
    pipeline.subscribe(seen.append)
    lines = _lines(_mixed())
    fmt = FORMATS["nginx"]
    records: list[Any] = []
    size = pipeline._add(lines, records, fmt)
    alone = [make_record(*line, NOW, fmt=fmt) for line in lines]
    assert [orjson.dumps(e) for e in seen] == [orjson.dumps(e) for _, e in alone]
    assert size == sum(len(r.raw) for r in records) and len(records) == len(lines)
    assert pipeline.stats.read == len(lines)


_TEXT = st.text(alphabet='aZ09 -/?="\\\x01\x7f\xe9\u2028\t[]', max_size=10)


@st.composite
def nginx_lines(draw: Any) -> bytes:
    """Lines in (or near) nginx's format with whatever its fields may hold."""
    addr = draw(st.sampled_from(["127.0.0.1", "::1", 'a"b', "\xe9", "x\\y"]) | _TEXT)
    user = draw(st.sampled_from(["-", "alice", 'b"o', "\x01"]))
    local = draw(st.sampled_from(["30/Nov/2026:12:00:00 +0000", "10/Oct/2000:13:55:36 -0700", "x"]))
    request = draw(st.sampled_from(["GET /a?b=c HTTP/1.1", "GET", "GET /x", "POST /p?q HTTP/2.0", "A  B C"]) | _TEXT)
    status = draw(st.sampled_from(["200", "503", "007", "499", "\u0665\u0660\u0660"]))
    size = draw(st.sampled_from(["0", "612", "0612", "9" * 19]))
    referrer = draw(st.sampled_from(["-", "https://x/?q=1"]) | _TEXT)
    agent = draw(st.sampled_from(["-", "curl/7.88.1"]) | _TEXT)
    cid = draw(st.sampled_from(["", ' "01J9ZK3Q8X-edge-1"', " 01J9-x", ' "-"', ' "bad id"', ' "' + "a" * 129 + '"']))
    timing = draw(st.sampled_from(["", " 0.012 1796040000.250", " 5 1796040000", " 999999999.999 100"]))
    end = draw(st.sampled_from(["", " ", "\r"]))
    line = f'{addr} - {user} [{local}] "{request}" {status} {size} "{referrer}" "{agent}"{cid}{timing}{end}'
    return line.encode()


@st.composite
def logfmt_lines(draw: st.DrawFn) -> bytes:
    """logfmt lines whose pairs take every path of ``logfmt_doc`` and of the reading alone: roles present or not,
    spelt as other keys, times in corrtrace's form or another or unreadable, IDs valid or not or only as an alias,
    quoted values, dotted keys, what orjson refuses (a tab, two spaces, ``=`` in a bare value), non-ASCII."""
    value = st.sampled_from(["x", "", "GET /a", "a=b", "caf\u00e9", "t\tab", 'q\\"u', "1.2ms"])
    pairs = {
        "time": st.sampled_from(
            [
                "2026-11-30T12:00:05.123Z",
                "2026-11-30T12:00:05Z",
                "2026-11-30T14:00:05.123+02:00",
                "soon",
                "1970-01-01T00:00:00.000Z",
            ]
        ),
        "ts": st.sampled_from(["2026-11-30T12:00:06.001Z"]),
        "level": st.sampled_from(["info", "WARN", ""]),
        "lvl": st.sampled_from(["debug"]),
        "msg": value,
        "message": value,
        "service": st.sampled_from(["orders-go", "", "a.b"]),
        "app": st.sampled_from(["billing"]),
        "correlation_id": st.sampled_from(["01890a5d-ac96-774b-bcce-000000012345", "bad id", "", "c-1"]),
        "request_id": st.sampled_from(["req-9"]),
        "status": value,
        "http.path": value,
    }
    keys = draw(st.lists(st.sampled_from(sorted(pairs)), min_size=1, max_size=8))
    out = []
    for key in keys:
        v = draw(pairs[key])
        out.append(
            f'{key}="{v}"'
            if (" " in v or not v or draw(st.booleans())) and '"' not in v and "\\" not in v
            else f"{key}={v}"
        )
    sep = draw(st.sampled_from([" ", " ", "  ", "\t"]))
    return sep.join(out).encode()


@pytest.mark.parametrize("name", ["nginx", "logfmt"])
@settings(max_examples=400, deadline=None)
@given(data=st.data(), mixed=st.booleans())
def test_documents_written_without_an_event_are_the_events_bytes(name: str, data: st.DataObject, mixed: bool) -> None:
    """Whatever the fields hold, the batch stores exactly ``orjson.dumps`` of the event the line alone gets."""
    texts = data.draw(st.lists(nginx_lines() if name == "nginx" else logfmt_lines(), min_size=1, max_size=6))
    if mixed:
        texts = [JSON_LINE, *texts, b"plain text"]
    assert_same_as_alone(texts, FORMATS[name])
    assert_same_as_alone(texts, FORMATS[f"{name}, a service to escape"])


def test_a_logfmt_line_is_written_without_an_event_when_it_can_be_and_read_alone_when_not() -> None:
    plain = b'time=2026-11-30T12:00:05.123Z level=info msg="GET /a" service=go correlation_id=c-1 http.path=/a'
    alone = [
        plain.replace(b"correlation_id=c-1", b"request_id=c-1"),  # the ID only as an alias: text_event's
        plain.replace(b"msg=", b"msg=\\"),  # a backslash
        plain.replace(b"GET", "G\u00c9T".encode()),  # non-ASCII
        plain.replace(b" level", b"  level"),  # two spaces: orjson refuses
        plain.replace(b"time=2026-11-30T12:00:05.123Z", b"time=soon"),  # no time read
    ]
    reads = _docs(FORMATS["logfmt"], [plain, *alone])
    assert reads[0] is not None and reads[0][1:] == (1796040005123, "c-1", "go", "INFO")
    assert orjson.loads(reads[0][0])["labels"] == {"http_path": "/a"}
    assert reads[1:] == [None] * len(alone)
    assert_same_as_alone([plain, *alone], FORMATS["logfmt"])


def test_a_logfmt_time_takes_one_place_in_the_document_whether_its_second_was_seen_or_not() -> None:
    """The first line of a second (read by ``clock.rfc3339``) and the next ones (``clock.canonical``, cached):
    the same bytes (``@timestamp`` came after the labels for the first one)."""
    line = b"time=2031-01-02T03:04:05.678Z level=info msg=x correlation_id=c-1 k=v"
    clock._canonical.clear()
    clock._rfc_ms.clear()
    first = make_record("src", 0, 1, line, NOW, fmt=FORMATS["logfmt"])[0].raw
    again = make_record("src", 0, 1, line, NOW, fmt=FORMATS["logfmt"])[0].raw
    assert first == again and list(orjson.loads(first))[-2:] == ["@timestamp", "labels"]


@settings(max_examples=300, deadline=None)
@given(line=nginx_lines())
def test_what_the_plain_pattern_matches_the_nginx_pattern_matches_alike(line: bytes) -> None:
    text = line.decode("utf-8", "replace")
    plain = NGINX_PLAIN.match(text)
    if plain is not None:
        general = NGINX.match(text)
        assert general is not None and general.groups() == plain.groups()


@pytest.mark.parametrize(
    "fragment", ['1.2.3.4 - - [x] "GET ', '" 200 1 "', "a" * 7 + " ", '"-" "', " 0.012 1796040000.250 \\"]
)
def test_a_batch_of_hostile_lines_stays_linear(fragment: str) -> None:
    line = (fragment * (SIZE // len(fragment))).encode()
    lines = _lines([line, NGINX_LINE.encode() + line, line[::-1]])
    assert _cpu_seconds(lambda: make_records(lines, NOW, FORMATS["nginx"])) < 0.5
