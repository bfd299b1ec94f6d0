"""The correlation ID in logging stacks that keep their own formatter: stdlib, structlog, loguru."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from loguru import logger as loguru_logger

from corrtrace.context import bind_correlation_id
from corrtrace.logging import (
    CorrelationIdFilter,
    JsonFormatter,
    add_correlation_id,
    loguru_patcher,
    set_trace_context_provider,
)

TRACE = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


@pytest.fixture()
def span() -> Iterator[tuple[str, str]]:
    """A real OpenTelemetry SDK span, current while the test runs, with corrtrace's tracing hook installed."""
    from corrtrace.middleware import otel
    from opentelemetry.sdk.trace import TracerProvider

    otel.install()
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("request") as current:
        ctx = current.get_span_context()
        yield format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    otel.uninstall()


@pytest.fixture()
def stdlib_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("tests.bridges")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, out
    log.removeHandler(handler)
    log.propagate = True


def test_stdlib_filter_feeds_a_plain_format_string(stdlib_logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = stdlib_logger
    handler = log.handlers[0]
    handler.setFormatter(logging.Formatter("%(correlation_id)s %(trace_id)s %(message)s"))
    handler.addFilter(CorrelationIdFilter())
    log.info("outside")
    with bind_correlation_id("req-1"):
        log.info("inside")
    set_trace_context_provider(lambda: TRACE)
    try:
        with bind_correlation_id("req-2"):
            log.info("traced")
    finally:
        set_trace_context_provider(None)
    assert out.getvalue().splitlines() == ["- - outside", "req-1 - inside", f"req-2 {TRACE[0]} traced"]


def test_stdlib_filter_keeps_an_explicit_id(stdlib_logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = stdlib_logger
    log.handlers[0].setFormatter(logging.Formatter("%(correlation_id)s"))
    log.handlers[0].addFilter(CorrelationIdFilter(default="none"))
    with bind_correlation_id("bound"):
        log.info("x", extra={"correlation_id": "explicit"})
    log.info("y")
    assert out.getvalue().splitlines() == ["explicit", "none"]


def _structlog_lines(processors: list, out: io.StringIO) -> structlog.BoundLogger:
    return structlog.wrap_logger(structlog.PrintLogger(out), processors=processors)


def test_structlog_processor_with_json_renderer(span: tuple[str, str]) -> None:
    out = io.StringIO()
    log = _structlog_lines([add_correlation_id, structlog.processors.JSONRenderer()], out)
    with bind_correlation_id("req-9"):
        log.info("hello", user="u1")
        log.info("mine", correlation_id="explicit")
    set_trace_context_provider(None)
    log.info("outside")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {
        "event": "hello",
        "user": "u1",
        "correlation_id": "req-9",
        "trace": {"id": span[0]},
        "span": {"id": span[1]},
    }
    assert second["correlation_id"] == "explicit"
    assert third == {"event": "outside"}


def test_structlog_routed_through_stdlib(stdlib_logger: tuple[logging.Logger, io.StringIO]) -> None:
    """structlog -> stdlib logging -> ProcessorFormatter(JSONRenderer); stdlib records get the ID too."""
    log, out = stdlib_logger
    log.handlers[0].setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[add_correlation_id],
        )
    )
    slog = structlog.wrap_logger(
        log,
        processors=[add_correlation_id, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    with bind_correlation_id("req-s"):
        slog.info("from structlog")
        log.info("from stdlib")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line["correlation_id"]) for line in lines] == [
        ("from structlog", "req-s"),
        ("from stdlib", "req-s"),
    ]


def test_structlog_into_corrtrace_json_formatter(stdlib_logger: tuple[logging.Logger, io.StringIO]) -> None:
    """structlog's ``render_to_log_kwargs`` hands the event to stdlib: corrtrace's own line shape comes out."""
    log, out = stdlib_logger
    log.handlers[0].setFormatter(JsonFormatter("svc"))
    slog = structlog.wrap_logger(
        log,
        processors=[add_correlation_id, structlog.stdlib.render_to_log_kwargs],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    set_trace_context_provider(lambda: TRACE)
    try:
        with bind_correlation_id("req-e"):
            slog.info("order placed", order_id=7)
    finally:
        set_trace_context_provider(None)
    line = json.loads(out.getvalue())
    assert (line["message"], line["correlation_id"], line["order_id"]) == ("order placed", "req-e", 7)
    assert line["trace"] == {"id": TRACE[0]} and line["span"] == {"id": TRACE[1]}


def test_loguru_patcher(span: tuple[str, str]) -> None:
    out = io.StringIO()
    log = loguru_logger.patch(loguru_patcher)
    sink = loguru_logger.add(out, format="{extra[correlation_id]} {message}", serialize=False)
    json_out = io.StringIO()
    json_sink = loguru_logger.add(json_out, serialize=True)
    try:
        with bind_correlation_id("req-l"):
            log.info("inside")
        set_trace_context_provider(None)
        log.info("outside")
        log.bind(correlation_id="explicit").info("bound")
    finally:
        loguru_logger.remove(sink)
        loguru_logger.remove(json_sink)
    assert out.getvalue().splitlines() == ["req-l inside", "None outside", "explicit bound"]
    extra = json.loads(json_out.getvalue().splitlines()[0])["record"]["extra"]
    assert extra == {"correlation_id": "req-l", "trace": {"id": span[0]}, "span": {"id": span[1]}}
