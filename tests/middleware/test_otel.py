"""Tracing mode: one server span with the ID as attribute and baggage, traceparent honoured, IDs in log lines,
composition with opentelemetry-instrumentation-fastapi, safe baggage, propagation to a real downstream server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from corrtrace.middleware import CorrelationIdMiddleware, WSGICorrelationIdMiddleware
from corrtrace.middleware import otel as ct_otel
from corrtrace.middleware.outbound import instrument_httpx
from fastapi import FastAPI
from opentelemetry import baggage, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import corrtrace

from .conftest import LogCapture, UvicornServer, call_asgi
from .test_outbound import echo_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture()
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    ct_otel.uninstall()


def _app_logging(scope: dict[str, Any], seen: dict[str, Any]) -> None:
    seen["baggage"] = baggage.get_baggage("correlation_id")
    seen["span"] = trace.get_current_span().get_span_context()
    logging.getLogger("app").info("inside")


async def test_server_span_attribute_baggage_traceparent_and_log_ids(spans: Any, logs: LogCapture) -> None:
    provider, exporter = spans
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        _app_logging(scope, seen)
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = CorrelationIdMiddleware(app, tracing=True, tracer_provider=provider)
    headers = [(b"x-correlation-id", b"traced-1"), (b"traceparent", f"00-{TRACE_ID}-{PARENT}-01".encode())]
    await call_asgi(mw, headers, path="/pay", method="POST")
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.attributes["correlation_id"] == "traced-1"
    assert format(span.context.trace_id, "032x") == TRACE_ID and format(span.parent.span_id, "016x") == PARENT
    assert span.attributes["http.response.status_code"] == 503 and not span.status.is_ok
    assert seen["baggage"] == "traced-1" and seen["span"].span_id == span.context.span_id
    inside = next(e for e in logs.events() if e["message"] == "inside")
    assert inside["trace"]["id"] == TRACE_ID and inside["span"]["id"] == format(span.context.span_id, "016x")
    (access,) = logs.events("corrtrace.access")
    assert access["trace"]["id"] == TRACE_ID  # the access line is written inside the span


@pytest.mark.parametrize(
    "traceparent",
    [
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 with trailing data
        b"garbage\r\n",
    ],
)
async def test_invalid_traceparent_starts_a_new_trace(spans: Any, traceparent: bytes) -> None:
    provider, exporter = spans
    mw = CorrelationIdMiddleware(lambda s, r, se: _ok(se), tracing=True, tracer_provider=provider, access_log=False)
    await call_asgi(mw, [(b"traceparent", traceparent)])
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and format(span.context.trace_id, "032x") != TRACE_ID


async def _ok(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_hostile_baggage_is_dropped_and_never_logged(spans: Any, logs: LogCapture) -> None:
    provider, _ = spans
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(baggage.get_all())
        await _ok(send)

    mw = CorrelationIdMiddleware(app, tracing=True, tracer_provider=provider)
    huge = b"k=" + b"v" * 9000
    injected = b'tenant=acme,evil=a%0Ab\n{"log":1},bad key=1'
    for value in (huge, injected):
        seen.clear()
        await call_asgi(mw, [(b"baggage", value), (b"x-correlation-id", b"bag-1")])
        assert seen.get("correlation_id") == "bag-1"
        assert all(len(str(v)) <= 256 and "\n" not in str(v) for v in seen.values())
    assert seen.get("tenant") == "acme" and "bad key" not in seen
    assert "vvvvvvvv" not in logs.text and '{"log":1}' not in logs.text and "evil" not in logs.text


async def test_fastapi_instrumentation_composes_without_duplicate_server_spans(spans: Any, logs: LogCapture) -> None:
    provider, exporter = spans
    api = FastAPI()

    @api.get("/items/{item}")
    async def item(item: str) -> dict[str, Any]:
        return {"cid": corrtrace.get_correlation_id(), "bag": baggage.get_baggage("correlation_id")}

    api.add_middleware(CorrelationIdMiddleware, tracing=True, tracer_provider=provider)
    FastAPIInstrumentor.instrument_app(api, tracer_provider=provider)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as client:
            response = await client.get("/items/9", headers={"X-Correlation-ID": "fa-1"})
    finally:
        FastAPIInstrumentor.uninstrument_app(api)
    assert response.json() == {"cid": "fa-1", "bag": "fa-1"}
    server = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 1 and server[0].attributes["correlation_id"] == "fa-1"
    assert server[0].name == "GET /items/{item}"  # FastAPI's span, enriched, not a second one of ours


async def test_fastapi_instrumentation_baggage_warnings_are_sanitised(spans: Any, logs: LogCapture) -> None:
    provider, _ = spans
    api = FastAPI()

    @api.get("/")
    async def root() -> dict[str, str]:
        return {}

    api.add_middleware(CorrelationIdMiddleware, tracing=True, tracer_provider=provider)
    FastAPIInstrumentor.instrument_app(api, tracer_provider=provider)  # its propagator parses baggage first
    hostile = "k=" + "v" * 9000
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as client:
            await client.get("/", headers={"baggage": hostile})
            await client.get("/", headers={"baggage": "x" * 100 + " junk-without-equals"})
    finally:
        FastAPIInstrumentor.uninstrument_app(api)
    warnings = [e for e in logs.events() if e["log"]["logger"] == "opentelemetry.baggage.propagation"]
    assert warnings, "OTel's propagator warns about an oversized baggage header"
    assert len(warnings) == 2
    assert "v" * 64 not in logs.text and "x" * 64 not in logs.text and all(len(e["message"]) < 200 for e in warnings)


async def test_outbound_carries_traceparent_and_baggage_to_a_real_server(
    spans: Any, uvicorn_server: Callable[[Any], UvicornServer]
) -> None:
    provider, exporter = spans
    result: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async with instrument_httpx(httpx.AsyncClient()) as client:
            result.update((await client.get(server.url + "/downstream")).json())
        await _ok(send)

    mw = CorrelationIdMiddleware(app, tracing=True, tracer_provider=provider, access_log=False)
    with uvicorn_server(CorrelationIdMiddleware(echo_app, access_log=False)) as server:
        await call_asgi(mw, [(b"x-correlation-id", b"prop-1"), (b"traceparent", f"00-{TRACE_ID}-{PARENT}-01".encode())])
    (span,) = exporter.get_finished_spans()
    received = result["headers"]
    assert received["x-correlation-id"] == "prop-1" and result["bound"] == "prop-1"
    assert received["traceparent"].split("-")[1] == TRACE_ID
    assert received["traceparent"].split("-")[2] == format(span.context.span_id, "016x")
    assert "correlation_id=prop-1" in received["baggage"]


def test_wsgi_tracing_span_ends_when_the_body_is_closed(spans: Any) -> None:
    provider, exporter = spans

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield (trace.get_current_span().get_span_context().trace_id.to_bytes(16, "big").hex()).encode()

    mw = WSGICorrelationIdMiddleware(app, tracing=True, tracer_provider=provider, access_log=False)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/w", "HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-01"}
    body: Any = mw(environ, lambda s, h, e=None: None)
    assert b"".join(body) == TRACE_ID.encode()
    assert exporter.get_finished_spans() == ()
    body.close()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["http.response.status_code"] == 200 and len(span.attributes["correlation_id"]) == 36
