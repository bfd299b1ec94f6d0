"""WSGI middleware: same semantics as ASGI, plus streaming bodies that keep the ID bound until close."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from corrtrace.middleware import WSGICorrelationIdMiddleware
from flask import Flask, Response, stream_with_context

import corrtrace
from corrtrace.ids import IdPolicy

from .conftest import UUID7, LogCapture

HOSTILE = {
    "crlf": "abc\r\nSet-Cookie: evil=1",
    "10000-chars": "a" * 10_000,
    "non-ascii": "caf\u00e9",
    "latin1-bytes": "\xc3\xa9t\xc3\xa9",
    "empty": "",
    "whitespace": "   ",
    "json-fragment": '{"correlation_id": "x"}',
}


def call(app: Any, **environ: Any) -> tuple[str, list[tuple[str, str]], bytes, Any]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.update(status=status, headers=headers)

    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.9", "wsgi.url_scheme": "http"}
    result = app({**base, **environ}, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return captured["status"], captured["headers"], body, result


def header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def seen_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{corrtrace.get_correlation_id()}|{environ['corrtrace.correlation_id']}".encode()]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_ids_are_replaced(name: str, logs: LogCapture) -> None:
    raw = HOSTILE[name]
    _, headers, body, _ = call(WSGICorrelationIdMiddleware(seen_app), HTTP_X_CORRELATION_ID=raw)
    (echoed,) = header(headers, "X-Correlation-ID")
    assert UUID7.fullmatch(echoed) and body.decode() == f"{echoed}|{echoed}"
    if raw.strip():
        assert raw not in logs.text
    (line,) = logs.events("corrtrace.access")
    assert line["correlation_id"] == echoed


def test_valid_and_fallback_ids_and_environ_access() -> None:
    mw = WSGICorrelationIdMiddleware(seen_app, access_log=False)
    _, headers, body, _ = call(mw, HTTP_X_CORRELATION_ID="w-1")
    assert header(headers, "X-Correlation-ID") == ["w-1"] and body == b"w-1|w-1"
    _, headers, body, _ = call(mw, HTTP_X_REQUEST_ID="nginx-abc")
    assert header(headers, "X-Correlation-ID") == ["nginx-abc"]
    assert corrtrace.get_correlation_id() is None  # reset after a list body


def test_fallback_headers_in_order_none_and_a_policy_that_is_not_one_class() -> None:
    several = WSGICorrelationIdMiddleware(seen_app, access_log=False, fallback_headers=("X-A", "X-B", "X-C"))
    _, headers, _, _ = call(several, HTTP_X_C="from-c", HTTP_X_B="from-b")
    assert header(headers, "X-Correlation-ID") == ["from-b"]  # the first present fallback, in the listed order
    _, headers, _, _ = call(several, HTTP_X_C="from-c")
    assert header(headers, "X-Correlation-ID") == ["from-c"]
    none = WSGICorrelationIdMiddleware(seen_app, access_log=False, fallback_headers=())
    _, headers, _, _ = call(none, HTTP_X_REQUEST_ID="ignored")
    assert UUID7.fullmatch(header(headers, "X-Correlation-ID")[0])
    pairs = WSGICorrelationIdMiddleware(seen_app, access_log=False, policy=IdPolicy(allowed_pattern=r"(ab)+"))
    _, headers, body, _ = call(pairs, HTTP_X_CORRELATION_ID="abab")
    assert header(headers, "X-Correlation-ID") == ["abab"] and body == b"abab|abab"
    _, headers, _, _ = call(pairs, HTTP_X_CORRELATION_ID="aba")
    assert UUID7.fullmatch(header(headers, "X-Correlation-ID")[0])


def test_streaming_keeps_the_id_bound_until_close(logs: LogCapture) -> None:
    seen: list[str | None] = []
    closed: list[str | None] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for i in range(3):
                seen.append(corrtrace.get_correlation_id())
                yield f"chunk{i}".encode()

        def close(self) -> None:
            closed.append(corrtrace.get_correlation_id())

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    mw = WSGICorrelationIdMiddleware(app)
    statuses: dict[str, Any] = {}
    result: Any = mw(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/s", "HTTP_X_CORRELATION_ID": "stream-1"},
        lambda s, h, e=None: statuses.update(s=s, h=h),
    )
    assert corrtrace.get_correlation_id() == "stream-1"  # still bound: the server has not iterated yet
    assert logs.events("corrtrace.access") == []  # the access line is written at close
    assert b"".join(result) == b"chunk0chunk1chunk2"
    result.close()
    assert seen == ["stream-1"] * 3 and closed == ["stream-1"]
    assert corrtrace.get_correlation_id() is None
    (line,) = logs.events("corrtrace.access")
    assert line["correlation_id"] == "stream-1" and line["http"]["response"]["status_code"] == 200


def test_flask_streaming_and_errors_carry_the_header(logs: LogCapture) -> None:
    flask_app = Flask("t")

    @flask_app.get("/stream")
    def stream() -> Response:
        def gen() -> Iterator[str]:
            for _ in range(2):
                yield (corrtrace.get_correlation_id() or "none") + ";"

        return Response(stream_with_context(gen()))

    @flask_app.get("/fail")
    def fail() -> str:
        raise RuntimeError("db down")

    flask_app.wsgi_app = WSGICorrelationIdMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
    client = flask_app.test_client()
    response = client.get("/stream", headers={"X-Correlation-ID": "flask-s"})
    assert response.data == b"flask-s;flask-s;" and response.headers["X-Correlation-ID"] == "flask-s"
    response.close()  # the server closes the body: that is when the ID is released and the line written
    response = client.get("/fail", headers={"X-Correlation-ID": "flask-500"})
    assert response.status_code == 500 and response.headers.get_all("X-Correlation-ID") == ["flask-500"]
    response.close()
    assert corrtrace.get_correlation_id() is None
    lines = {e["url"]["path"]: e for e in logs.events("corrtrace.access")}
    assert lines["/fail"]["http"]["response"]["status_code"] == 500


def test_raw_app_exception_becomes_500_with_the_header(logs: LogCapture) -> None:
    def boom(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise KeyError("missing")

    status, headers, body, _ = call(WSGICorrelationIdMiddleware(boom), HTTP_X_CORRELATION_ID="w-500")
    assert status.startswith("500") and header(headers, "X-Correlation-ID") == ["w-500"]
    assert body == b"Internal Server Error"
    errors = [e for e in logs.events() if e["log"]["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["correlation_id"] == "w-500" and errors[0]["error"]["type"] == "KeyError"
    (line,) = logs.events("corrtrace.access")
    assert line["event"]["outcome"] == "failure" and line["error"]["type"] == "KeyError"


def test_expose_headers_appended() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", environ["test.headers"])
        return [b""]

    mw = WSGICorrelationIdMiddleware(app, access_log=False)
    _, headers, _, _ = call(mw, **{"test.headers": [("Access-Control-Expose-Headers", "X-Total")]})
    assert header(headers, "Access-Control-Expose-Headers") == ["X-Total, X-Correlation-ID"]
    _, headers, _, _ = call(mw, **{"test.headers": [("Access-Control-Allow-Origin", "*")]})
    assert header(headers, "Access-Control-Expose-Headers") == ["X-Correlation-ID"]
    _, headers, _, _ = call(mw, **{"test.headers": [("x-correlation-id", "app-set")]})
    assert header(headers, "X-Correlation-ID") == ["app-set"]


def test_concurrent_threads_isolated() -> None:
    barrier = threading.Barrier(16)
    wrong: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        barrier.wait(timeout=5)
        for _ in range(20):
            if corrtrace.get_correlation_id() != environ["HTTP_X_CORRELATION_ID"]:
                wrong.append(environ["HTTP_X_CORRELATION_ID"])
            yield b"."

    mw = WSGICorrelationIdMiddleware(app, access_log=False)
    results: dict[str, list[str]] = {}

    def worker(i: int) -> None:
        _, headers, _, _ = call(mw, HTTP_X_CORRELATION_ID=f"t-{i}")
        results[f"t-{i}"] = header(headers, "X-Correlation-ID")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and all(v == [k] for k, v in results.items()) and len(results) == 16


def test_internal_error_logged_once_and_request_goes_on(logs: LogCapture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", None)  # not a header list: the echo step fails, the response must not
        return [b"ok"]

    mw = WSGICorrelationIdMiddleware(app, access_log=False)
    for _ in range(3):
        status, _, body, _ = call(mw)
        assert status == "200 OK" and body == b"ok"
    assert mw.errors.count == 3
    assert len([e for e in logs.events() if e["log"]["level"] == "ERROR"]) == 1
