"""The JSON log line: ECS field names, the correlation ID, and no crash on odd values."""

from __future__ import annotations

import io
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import corrtrace
from corrtrace import context
from corrtrace.logging import (
    JsonFileHandler,
    configure,
    emit_json,
    format_event,
    parse_line,
    set_trace_context_provider,
)


@pytest.fixture()
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    buffer = io.StringIO()
    handler = configure("checkout", version="1.2.3", environment="test", stream=buffer, logger="fmt")
    yield logging.getLogger("fmt"), buffer
    logging.getLogger("fmt").removeHandler(handler)


def _one(buffer: io.StringIO) -> dict:
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1
    return orjson.loads(lines[0])


def test_line_has_the_contract_fields(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = capture
    with corrtrace.bind_correlation_id("req-1"):
        log.info("order %s created", 42, extra={"order_id": 42, "event.action": "create"})
    line = _one(buffer)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["@timestamp"])
    assert line["message"] == "order 42 created"
    assert line["correlation_id"] == "req-1"
    assert line["log"] == {"level": "INFO", "logger": "fmt"}
    assert line["service"] == {"name": "checkout", "version": "1.2.3", "environment": "test"}
    assert line["host"]["name"] and isinstance(line["process"]["pid"], int)
    assert line["ecs"]["version"]
    assert line["order_id"] == 42 and line["event"] == {"action": "create"}
    assert "trace" not in line


def test_dotted_extras_nest_without_touching_the_next_line(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = capture
    log.info("call", extra={"service.target.name": "payment"})
    log.info("plain")
    first, second = (orjson.loads(x) for x in buffer.getvalue().splitlines())
    assert first["service"]["target"] == {"name": "payment"} and first["service"]["name"] == "checkout"
    assert "target" not in second["service"]


def test_exceptions_become_error_fields(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = capture
    try:
        raise ValueError("bad amount")
    except ValueError:
        log.exception("charge failed")
    error = _one(buffer)["error"]
    assert error["type"] == "ValueError" and error["message"] == "bad amount"
    assert "Traceback" in error["stack_trace"]


def test_unserialisable_values_are_rendered_not_raised(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = capture

    class Odd:
        def __repr__(self) -> str:
            return "<Odd>"

    log.info("odd", extra={"thing": Odd(), "keys": {1: "int key"}, "huge": 1 << 80, "s": {1, 2}})
    line = _one(buffer)
    assert line["thing"] == "<Odd>"
    assert line["keys"] == {"1": "int key"}
    assert line["huge"] == str(1 << 80)


def test_bound_fields_and_trace_context(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = capture
    set_trace_context_provider(lambda: ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
    try:
        with context.bind_log_fields({"faas": {"name": "ship", "coldstart": True}}):
            log.info("invoked")
    finally:
        set_trace_context_provider(None)
    line = _one(buffer)
    assert line["faas"] == {"name": "ship", "coldstart": True}
    assert line["trace"] == {"id": "0af7651916cd43dd8448eb211c80319c"}
    assert line["span"] == {"id": "b7ad6b7169203331"}


def test_file_output_and_reconfigure(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    configure("a", path=path, logger="file-test")
    configure("b", path=path, logger="file-test")  # replaces, never duplicates
    with corrtrace.bind_correlation_id("f-1"):
        logging.getLogger("file-test").warning("to file")
    for handler in list(logging.getLogger("file-test").handlers):
        handler.close()
        logging.getLogger("file-test").removeHandler(handler)
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert orjson.loads(lines[0])["service"]["name"] == "b"


def test_an_empty_path_means_the_stream() -> None:
    """``configure(path=os.environ.get("LOG_FILE", ""))`` with the variable unset writes to the stream; it used
    to open the current directory and fail with IsADirectoryError at start-up."""
    buffer = io.StringIO()
    handler = configure("svc", path="", stream=buffer, logger="empty-path-test")
    try:
        with corrtrace.bind_correlation_id("e-1"):
            logging.getLogger("empty-path-test").warning("to the stream")
    finally:
        logging.getLogger("empty-path-test").removeHandler(handler)
    assert orjson.loads(buffer.getvalue())["correlation_id"] == "e-1"


def test_parse_line_keeps_non_json() -> None:
    assert parse_line(b'{"message": "x"}') == {"message": "x"}
    assert parse_line(b"plain text\n") == {"message": "plain text", "log": {"original": "plain text"}}
    assert parse_line("[1, 2]")["log"]["original"] == "[1, 2]"
    assert orjson.loads(format_event({"a": object()}))["a"].startswith("<object")


@pytest.fixture()
def direct_log(tmp_path: Path) -> Iterator[tuple[logging.Logger, Path]]:
    """A logger whose only destination is ``configure``'s file handler (not propagated to pytest's handlers)."""
    path = tmp_path / "access.log"
    parent = logging.getLogger("direct-test")
    handler = configure("svc", path=path, logger=parent)
    parent.propagate = False
    yield logging.getLogger("direct-test.access"), path
    parent.removeHandler(handler)
    handler.close()
    parent.propagate = True


@pytest.fixture()
def record_names() -> Iterator[list[str]]:
    """The logger names of the ``LogRecord``s made while the test runs (a direct line makes none)."""
    records: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        records.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    yield records
    logging.setLogRecordFactory(factory)


def test_fields_line_skips_the_log_record_and_matches_the_record_path(
    direct_log: tuple[logging.Logger, Path], record_names: list[str]
) -> None:
    from corrtrace.middleware._core import log_access

    log, path = direct_log
    records = record_names
    fields = {
        "event": {"dataset": "corrtrace.access", "duration": 5},
        "http": {"response": {"status_code": 404}},
        "url": {"path": "/x"},
        "labels": {"rejected_correlation_id": "a\\x0d"},
    }
    members = orjson.dumps(fields)[1:-1]
    set_trace_context_provider(lambda: ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
    try:
        emit_json(log, logging.WARNING, "GET /x 404", "cid-1", members)  # the only destination is ours: direct
        assert records == []
        log.addFilter(lambda record: True)  # a logger filter must see a record: the ordinary path
        emit_json(log, logging.WARNING, "GET /x 404", "cid-1", members)
        assert records == ["direct-test.access"]
        log.setLevel(logging.WARNING)  # below the logger's level: the access line's gate writes nothing
        log_access(log, "cid-1", "GET", "/ok", 200, None, 0, None, None)
    finally:
        set_trace_context_provider(None)
    direct, via_record = (orjson.loads(line) for line in path.read_bytes().splitlines())
    assert direct.pop("@timestamp") and via_record.pop("@timestamp")
    assert direct == via_record
    assert direct["correlation_id"] == "cid-1" and direct["log"] == {"level": "WARNING", "logger": "direct-test.access"}
    assert direct["trace"] == {"id": "0af7651916cd43dd8448eb211c80319c"} and direct["service"] == {"name": "svc"}


@pytest.mark.parametrize(
    ("method", "path", "status", "error", "client", "rejected"),
    [
        ("GET", "/", 200, None, "127.0.0.1", None),
        ("POST", '/a"b\\c/\u00e9\u2028\x01', 404, None, None, 'bad"\\x0d'),
        ("GET", "/boom", 500, ZeroDivisionError("x"), "::1", None),
        ("PUT", "/x" * 1500, 503, None, "10.0.0.1", None),
    ],
)
def test_the_access_line_built_as_json_is_the_record_path_line(
    direct_log: tuple[logging.Logger, Path],
    method: str,
    path: str,
    status: int,
    error: Exception | None,
    client: str | None,
    rejected: str | None,
) -> None:
    """The direct line (a bytes template, each string escaped by orjson) parses to the same event as the line
    written through a ``LogRecord`` (a logger filter forces that path), odd paths and every optional field too."""
    from corrtrace.middleware._core import log_access

    log, path_out = direct_log
    log.setLevel(logging.DEBUG)
    log_access(log, "cid-1", method, path, status, error, 0, client, rejected)
    log.addFilter(lambda record: True)
    try:
        log_access(log, "cid-1", method, path, status, error, 0, client, rejected)
    finally:
        log.filters.clear()
        log.setLevel(logging.NOTSET)
    direct, via_record = (orjson.loads(line) for line in path_out.read_bytes().splitlines())
    for event in (direct, via_record):
        assert event.pop("@timestamp") and event["event"].pop("duration") > 0
    assert direct == via_record
    assert direct["url"]["path"] == (path if len(path) <= 2048 else path[:2048] + "…")
    assert direct["message"] == f"{method} {direct['url']['path']} {status}"
    assert direct.get("client", {}).get("address") == client
    assert direct.get("labels", {}).get("rejected_correlation_id") == rejected
    assert direct.get("error", {}).get("type") == (type(error).__name__ if error else None)


def test_a_repeated_path_is_escaped_from_the_bounded_cache(direct_log: tuple[logging.Logger, Path]) -> None:
    """The escaped form of a short path is kept for the next request to it (the same line again), and the
    cache of untrusted paths stays bounded however many distinct ones arrive."""
    from corrtrace.middleware import _core

    log, path_out = direct_log
    log.setLevel(logging.DEBUG)
    odd = '/a"b\\c/\u00e9\x01'
    try:
        for _ in range(2):
            _core.log_access(log, "cid-1", "GET", odd, 200, None, 0, None, None)
        for i in range(3000):
            _core.log_access(log, "cid-1", "GET", f"/{i}", 200, None, 0, None, None)
    finally:
        log.setLevel(logging.NOTSET)
    lines = [orjson.loads(line) for line in path_out.read_bytes().splitlines()]
    assert [line["url"]["path"] for line in lines] == [odd, odd] + [f"/{i}" for i in range(3000)]
    assert 0 < len(_core._PATHS) <= 1024


class _Collect(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    "change",
    [
        "a handler on the logger",
        "a handler on its parent",
        "a passed-over handler's level lowered",
        "propagation to a root with a handler",
        "a filter on the handler",
        "another formatter",
        "a new logger between",
    ],
)
def test_a_direct_route_sees_a_change_made_after_it(tmp_path: Path, change: str, record_names: list[str]) -> None:
    """The access line's handler walk is kept per logger and level with what it read; a change to any of it made
    afterwards sends the next line through logging (a ``LogRecord``) as a new walk would."""
    from corrtrace.middleware._core import log_access

    parent, root, middle = logging.getLogger("route-test"), logging.getLogger(), logging.getLogger("route-test.a")
    handler = configure("svc", path=tmp_path / "a.log", logger=parent)
    parent.propagate = False
    log = logging.getLogger("route-test.a.access")  # its parent: route-test ("route-test.a" has no handler yet)
    other = _Collect(logging.ERROR if change == "a passed-over handler's level lowered" else logging.NOTSET)
    if change == "a passed-over handler's level lowered":
        parent.addHandler(other)
    records = record_names
    try:
        for _ in range(2):  # the second line takes the kept route
            log_access(log, "cid-1", "GET", "/", 200, None, 0, None, None)
        assert records == [] and other.records == []
        if change == "a handler on the logger":
            log.addHandler(other)
        elif change == "a handler on its parent":
            parent.addHandler(other)
        elif change == "a passed-over handler's level lowered":
            other.setLevel(logging.INFO)
        elif change == "propagation to a root with a handler":
            root.addHandler(other)
            parent.propagate = True
        elif change == "a filter on the handler":
            handler.addFilter(lambda record: True)
        elif change == "another formatter":
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:
            middle.addHandler(other)
        log_access(log, "cid-1", "GET", "/after", 200, None, 0, None, None)
    finally:
        for node in (log, parent, root, middle):
            node.removeHandler(other)
        parent.removeHandler(handler)
        handler.close()
        parent.propagate = True
    assert records == ["route-test.a.access"]
    lines = (tmp_path / "a.log").read_text().splitlines()  # the handler still writes the third line, by the record
    assert [orjson.loads(line)["url"]["path"] for line in lines[:2]] == ["/", "/"] and len(lines) == 3
    if change == "another formatter":
        assert lines[2] == "GET /after 200"
    else:
        assert orjson.loads(lines[2])["url"]["path"] == "/after"
    if change not in ("a filter on the handler", "another formatter"):
        assert [r.getMessage() for r in other.records] == ["GET /after 200"]


def test_an_access_line_with_percent_signs_in_the_service_and_method(tmp_path: Path) -> None:
    """The per-method-and-status template is filled twice (its own values, then each line's): a ``%`` in the
    service name, the method or the path is written as it is, on the first line and from the kept template."""
    from corrtrace.middleware._core import log_access

    parent = logging.getLogger("percent-test")
    handler = configure("50%s off %d", path=tmp_path / "p.log", logger=parent)
    parent.propagate = False
    log = logging.getLogger("percent-test.access")
    try:
        for path in ("/a%20b", "/%s%d%%"):
            log_access(log, "cid-1", "GE%sT", path, 200, None, 0, "10.0.0.%d", None)
    finally:
        parent.removeHandler(handler)
        handler.close()
        parent.propagate = True
    lines = [orjson.loads(line) for line in (tmp_path / "p.log").read_bytes().splitlines()]
    assert [line["url"]["path"] for line in lines] == ["/a%20b", "/%s%d%%"]
    assert [line["message"] for line in lines] == ["GE%sT /a%20b 200", "GE%sT /%s%d%% 200"]
    for line in lines:
        assert line["service"] == {"name": "50%s off %d"} and line["http"]["request"]["method"] == "GE%sT"
        assert line["client"] == {"address": "10.0.0.%d"} and line["event"]["outcome"] == "success"
        assert line["http"]["response"]["status_code"] == 200 and type(line["event"]["duration"]) is int


def test_access_lines_survive_sigkill(tmp_path: Path) -> None:
    """No buffer in the process: every access line the middleware wrote before a SIGKILL is whole in the file."""
    path = tmp_path / "killed.log"
    script = (
        "import os, signal\n"
        "from corrtrace.logging import configure\n"
        "from corrtrace.middleware import WSGICorrelationIdMiddleware\n"
        f"configure('svc', path={str(path)!r})\n"
        "def app(environ, start_response):\n"
        "    start_response('201 Created', [])\n"
        "    return [b'ok']\n"
        "mw = WSGICorrelationIdMiddleware(app)\n"
        "for i in range(300):\n"
        "    mw({'PATH_INFO': f'/{i}', 'HTTP_X_CORRELATION_ID': f'id-{i}'}, lambda *a: None)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-800:]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    seen = [(line["correlation_id"], line["url"]["path"]) for line in lines]
    assert seen == [(f"id-{i}", f"/{i}") for i in range(300)]
    assert {line["http"]["response"]["status_code"] for line in lines} == {201}
    assert {line["event"]["dataset"] for line in lines} == {"corrtrace.access"}


def test_file_handler_follows_rename_rotation(tmp_path: Path) -> None:
    path, rotated = tmp_path / "app.log", tmp_path / "app.log.1"
    handler = JsonFileHandler(path, check_interval=3600)
    handler.write_line("one")
    path.rename(rotated)
    handler.write_line("two")  # before the next check: still appended to the renamed file, not lost
    handler._next_check = 0.0  # the check is due
    handler.write_line("three")
    handler.close()
    handler.write_line("four")  # after close: reopened, as logging.FileHandler does
    handler.close()
    assert rotated.read_text() == "one\ntwo\n"
    assert path.read_text() == "three\nfour\n"


def test_a_direct_line_follows_a_new_configure(tmp_path: Path) -> None:
    """The access line's template is cached per logger and level, and rebuilt for the formatter of a new
    ``configure`` (here a new service name) rather than written with the old one's."""
    from corrtrace.middleware._core import log_access

    parent = logging.getLogger("direct-reconfigure")
    parent.propagate = False
    log = logging.getLogger("direct-reconfigure.access")
    try:
        for service in ("one", "two"):
            handler = configure(service, path=tmp_path / f"{service}.log", logger=parent)
            log_access(log, "cid-1", "GET", "/", 200, None, 0, None, None)
    finally:
        parent.removeHandler(handler)
        handler.close()
        parent.propagate = True
    for service in ("one", "two"):
        (line,) = (tmp_path / f"{service}.log").read_bytes().splitlines()
        assert orjson.loads(line)["service"] == {"name": service}
