"""One behaviour for an unhandled exception (ASGI and WSGI), access-line levels, skip paths, the one ID reader."""

from __future__ import annotations

from typing import Any

import pytest
from corrtrace.middleware import CorrelationIdMiddleware, WSGICorrelationIdMiddleware
from corrtrace.middleware import otel as ct_otel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from corrtrace.ids import Accepted, IdReader

from .conftest import LogCapture, call_asgi, response_header
from .test_wsgi import call, header


def status_app(status: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    return app


def wsgi_status_app(status: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [])
        return [b"x"]

    return app


async def test_asgi_unhandled_exception_is_logged_once_at_error_with_the_id_and_stack(logs: LogCapture) -> None:
    async def boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("kaput")

    with pytest.raises(RuntimeError) as raised:
        await call_asgi(CorrelationIdMiddleware(boom), [(b"x-correlation-id", b"pay-err")])
    errors = [e for e in logs.events() if e["log"]["level"] == "ERROR"]
    assert len(errors) == 1, errors
    (line,) = errors
    assert line["correlation_id"] == "pay-err" and line["error"]["type"] == "RuntimeError"
    assert "raise RuntimeError" in line["error"]["stack_trace"]
    assert getattr(raised.value, "__corrtrace_logged__", False)  # the server's duplicate line can be dropped
    (access,) = logs.events("corrtrace.access")
    assert access["log"]["level"] == "WARNING" and access["http"]["response"]["status_code"] == 500


async def test_asgi_500_has_a_computed_content_length() -> None:
    sent: list[dict[str, Any]] = []

    async def boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("x")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(ValueError):
        await CorrelationIdMiddleware(boom, access_log=False)(scope, None, send)  # type: ignore[arg-type]
    length = dict(sent[0]["headers"])[b"content-length"]
    assert int(length) == len(sent[1]["body"]) > 0


def test_wsgi_exception_in_a_streamed_body_is_logged_under_the_id(logs: LogCapture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"first"
        raise OSError("disk gone")

    mw = WSGICorrelationIdMiddleware(app)
    body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/s", "HTTP_X_CORRELATION_ID": "s-err"}, lambda *a: None)
    with pytest.raises(OSError):
        list(body)
    body.close()  # type: ignore[attr-defined]
    (line,) = [e for e in logs.events() if e["log"]["level"] == "ERROR"]
    assert line["correlation_id"] == "s-err" and "disk gone" in line["error"]["message"]
    (access,) = logs.events("corrtrace.access")  # written at close, with the body's exception
    assert access["correlation_id"] == "s-err" and access["error"] == {"type": "OSError"}
    assert access["event"]["outcome"] == "failure" and access["http"]["response"]["status_code"] == 200


@pytest.mark.parametrize(("status", "level"), [(200, "INFO"), (302, "INFO"), (404, "WARNING"), (503, "ERROR")])
async def test_access_line_level_follows_the_status(status: int, level: str, logs: LogCapture) -> None:
    await call_asgi(CorrelationIdMiddleware(status_app(status)))
    call(WSGICorrelationIdMiddleware(wsgi_status_app(f"{status} Whatever")))
    lines = logs.events("corrtrace.access")
    assert [line["log"]["level"] for line in lines] == [level, level]
    assert all(line["http"]["response"]["status_code"] == status for line in lines)


async def test_5xx_access_line_is_written_when_the_logger_only_lets_errors_through(logs: LogCapture) -> None:
    import logging

    access = logging.getLogger("corrtrace.access")
    access.setLevel(logging.ERROR)
    try:
        await call_asgi(CorrelationIdMiddleware(status_app(200)))
        await call_asgi(CorrelationIdMiddleware(status_app(502)))
    finally:
        access.setLevel(logging.NOTSET)
    (line,) = logs.events("corrtrace.access")
    assert line["http"]["response"]["status_code"] == 502


async def test_skip_paths_write_no_access_line_and_no_span_but_echo_the_id(logs: LogCapture) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    options = {"skip_paths": ["/healthz", "/metrics", "/static*"], "tracing": True, "tracer_provider": provider}
    try:
        asgi = CorrelationIdMiddleware(status_app(200), **options)
        wsgi = WSGICorrelationIdMiddleware(wsgi_status_app("200 OK"), **options)
        for path in ["/healthz", "/metrics", "/metrics/x", "/static", "/staticfiles/a.css"]:
            messages = await call_asgi(asgi, [(b"x-correlation-id", b"probe-1")], path=path)
            assert response_header(messages, b"x-correlation-id") == b"probe-1"
            _, headers, _, _ = call(wsgi, PATH_INFO=path, HTTP_X_CORRELATION_ID="probe-2")
            assert header(headers, "X-Correlation-ID") == ["probe-2"]
        assert logs.events("corrtrace.access") == [] and exporter.get_finished_spans() == ()
        for path in ["/healthzz", "/metricsx", "/orders"]:  # not skipped: "/metrics" is not a bare prefix
            await call_asgi(asgi, path=path)
            call(wsgi, PATH_INFO=path)
        assert len(logs.events("corrtrace.access")) == 6 and len(exporter.get_finished_spans()) == 6
    finally:
        ct_otel.uninstall()
    with pytest.raises(TypeError, match="not one string"):
        CorrelationIdMiddleware(status_app(200), skip_paths="/healthz")


def test_one_reader_for_bytes_text_and_payload_values() -> None:
    reader = IdReader()
    assert reader.read(b"abc-1") == Accepted("abc-1", "accepted")
    assert reader.read("abc-1") == Accepted("abc-1", "accepted")
    for absent in (None, "", b""):
        assert reader.read(absent).status == "generated"
    hostile_values = [(b"a\r\nb", "a\\x0d\\x0ab"), ("caf\u00e9", "caf\\xe9"), (12345, "12345"), (["x"], "['x']")]
    for hostile, excerpt in hostile_values:
        found = reader.read(hostile)
        assert found.status == "rejected" and found.excerpt == excerpt and found.value != hostile
