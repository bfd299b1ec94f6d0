"""The JSON log line: ECS field names, the correlation ID, and no crash on odd values."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import corrtrace
from corrtrace import context
from corrtrace.logging import configure, format_event, parse_line, set_trace_context_provider


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


def test_parse_line_keeps_non_json() -> None:
    assert parse_line(b'{"message": "x"}') == {"message": "x"}
    assert parse_line(b"plain text\n") == {"message": "plain text", "log": {"original": "plain text"}}
    assert parse_line("[1, 2]")["log"]["original"] == "[1, 2]"
    assert orjson.loads(format_event({"a": object()}))["a"].startswith("<object")
