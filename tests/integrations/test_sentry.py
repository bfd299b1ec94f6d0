"""Sentry events captured during a request carry the ``correlation_id`` tag (real sentry-sdk, recorded envelopes)."""

from __future__ import annotations

import sentry_sdk
from corrtrace.middleware import CorrelationIdMiddleware, WSGICorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask

from corrtrace.context import bind_correlation_id

from .conftest import RecordingTransport


def _tags(transport: RecordingTransport) -> list[tuple[str, str | None]]:
    found = []
    for event in transport.events():
        what = event.get("message") or event["exception"]["values"][-1]["value"]
        found.append((what, event.get("tags", {}).get("correlation_id")))
    return found


def test_flask_events_are_tagged_and_the_caller_can_quote_the_id(sentry_events: RecordingTransport) -> None:
    flask_app = Flask("sentry-wsgi")

    @flask_app.get("/msg")
    def msg() -> str:
        sentry_sdk.capture_message("handled in view")
        return "ok"

    @flask_app.get("/boom")
    def boom() -> str:
        raise RuntimeError("unhandled in view")

    flask_app.wsgi_app = WSGICorrelationIdMiddleware(flask_app.wsgi_app, access_log=False)  # type: ignore[method-assign]
    client = flask_app.test_client()
    with client.get("/msg", headers={"X-Correlation-ID": "req-a"}) as ok:  # closed: the ID is unbound
        assert ok.status_code == 200
    with client.get("/boom") as fresh:
        assert fresh.status_code == 500
        generated = fresh.headers["X-Correlation-ID"]
    sentry_sdk.capture_message("outside any request")
    assert _tags(sentry_events) == [
        ("handled in view", "req-a"),
        ("unhandled in view", generated),
        ("outside any request", None),
    ]


def test_fastapi_events_are_tagged(sentry_events: RecordingTransport) -> None:
    app = FastAPI()

    @app.get("/msg")
    async def msg() -> dict[str, str]:
        sentry_sdk.capture_message("async view")
        try:
            raise ValueError("caught and reported")
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
        return {}

    app.add_middleware(CorrelationIdMiddleware, access_log=False)
    with TestClient(app) as client:
        assert client.get("/msg", headers={"X-Correlation-ID": "req-b"}).status_code == 200
    assert _tags(sentry_events) == [("async view", "req-b"), ("caught and reported", "req-b")]


def test_a_tag_set_by_the_code_wins(sentry_events: RecordingTransport) -> None:
    with bind_correlation_id("bound"):
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("correlation_id", "chosen")
            sentry_sdk.capture_message("explicit")
        sentry_sdk.capture_message("implicit")
    assert _tags(sentry_events) == [("explicit", "chosen"), ("implicit", "bound")]


def test_an_unhandled_asgi_exception_is_reported_once_with_the_tag(sentry_events: RecordingTransport) -> None:
    """corrtrace logs the exception under the ID (Sentry's logging integration reports it, tagged); Sentry's
    ASGI-level capture of the same exception, outside the binding, is dropped by its dedupe integration."""
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise LookupError("unhandled async")

    wrapped = CorrelationIdMiddleware(app, access_log=False)
    with TestClient(wrapped, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Correlation-ID": "req-c"})
    assert response.status_code == 500 and response.headers["X-Correlation-ID"] == "req-c"
    assert _tags(sentry_events) == [("unhandled async", "req-c")]


def test_django_view_exception_is_tagged(django_project: None, sentry_events: RecordingTransport) -> None:
    from django.test import Client

    response = Client(raise_request_exception=False).get("/boom", headers={"X-Correlation-ID": "req-d"})
    assert response.status_code == 500 and response["X-Correlation-ID"] == "req-d"
    assert _tags(sentry_events) == [("view failed", "req-d")]
