"""ASGI middleware: validation, echo (500s and websockets too), CORS expose list, isolation, access log."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from corrtrace.middleware import CorrelationIdMiddleware, CorrelationSettings
from fastapi import BackgroundTasks, FastAPI
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import corrtrace
from corrtrace import context
from corrtrace.ids import IdPolicy

from .conftest import UUID7, LogCapture, call_asgi, response_header

HOSTILE = {
    "crlf": b"abc\r\nSet-Cookie: evil=1",
    "lf-log-injection": b'ok\n{"log":{"level":"CRITICAL"}}',
    "10000-chars": b"a" * 10_000,
    "non-ascii": "caf\u00e9-\u2603".encode(),
    "empty": b"",
    "whitespace": b"   ",
    "leading-tab": b"\tabc",
    "json-fragment": b'{"correlation_id": "x"}',
    "nul": b"abc\x00def",
}


async def seen_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the correlation ID it runs under, so the echo can be compared with what the app saw."""
    cid = corrtrace.get_correlation_id() or ""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": cid.encode()})


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_ids_are_replaced_and_never_logged_raw(name: str, logs: LogCapture) -> None:
    raw = HOSTILE[name]
    messages = await call_asgi(CorrelationIdMiddleware(seen_app), [(b"x-correlation-id", raw)])
    echoed = response_header(messages, b"x-correlation-id")
    assert echoed is not None and UUID7.fullmatch(echoed.decode()), echoed
    assert messages[1]["body"] == echoed  # the app ran under exactly the ID the caller gets back
    assert raw not in logs.text.encode() or raw.strip() == b""
    (access,) = logs.events("corrtrace.access")
    assert access["correlation_id"] == echoed.decode()
    if raw.strip():
        excerpt = access["labels"]["rejected_correlation_id"]
        assert len(excerpt) <= 33 * 4 and "\n" not in excerpt and "\r" not in excerpt
    assert "\r" not in logs.text and logs.text.count("\n") == len(logs.events())


async def test_valid_id_is_kept_and_fallback_header_is_used() -> None:
    app = CorrelationIdMiddleware(seen_app)
    messages = await call_asgi(app, [(b"x-correlation-id", b"order-42:retry.1_a")])
    assert response_header(messages, b"x-correlation-id") == b"order-42:retry.1_a"
    assert messages[1]["body"] == b"order-42:retry.1_a"
    messages = await call_asgi(app, [(b"x-request-id", b"from-nginx-123")])
    assert response_header(messages, b"x-correlation-id") == b"from-nginx-123"
    both = [(b"x-request-id", b"fallback"), (b"x-correlation-id", b"primary")]
    assert response_header(await call_asgi(app, both), b"x-correlation-id") == b"primary"
    custom = CorrelationIdMiddleware(seen_app, header_name="X-Trace-Ref", fallback_headers=())
    messages = await call_asgi(custom, [(b"x-request-id", b"ignored"), (b"x-trace-ref", b"mine")])
    assert response_header(messages, b"x-trace-ref") == b"mine"


async def test_no_leak_into_the_next_request_on_the_same_task() -> None:
    app = CorrelationIdMiddleware(seen_app, access_log=False)
    with corrtrace.bind_correlation_id("outer"):
        await call_asgi(app, [(b"x-correlation-id", b"first")])
        assert corrtrace.get_correlation_id() == "outer"
    await call_asgi(app, [(b"x-correlation-id", b"second")])
    assert corrtrace.get_correlation_id() is None
    first = await call_asgi(app)
    second = await call_asgi(app)
    assert first[1]["body"] != second[1]["body"]


async def test_concurrent_requests_never_see_each_others_id(logs: LogCapture) -> None:
    mismatches: list[str] = []
    log = __import__("logging").getLogger("app.concurrent")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        mine = dict(scope["headers"])[b"x-correlation-id"].decode()
        for step in range(5):
            await asyncio.sleep(random.random() / 1000)
            if corrtrace.get_correlation_id() != mine:
                mismatches.append(mine)
            log.info("step", extra={"expected": mine, "step": step})
        await seen_app(scope, receive, send)

    mw = CorrelationIdMiddleware(app)
    ids = [f"req-{i}" for i in range(200)]
    results = await asyncio.gather(*(call_asgi(mw, [(b"x-correlation-id", i.encode())]) for i in ids))
    assert mismatches == []
    assert [r[1]["body"].decode() for r in results] == ids
    steps = [e for e in logs.events() if e["message"] == "step"]
    assert len(steps) == 1000 and all(e["correlation_id"] == e["expected"] for e in steps)


async def test_unhandled_exception_500_carries_the_id_raw_app(logs: LogCapture) -> None:
    async def boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("kaput")

    sent: list[dict[str, Any]] = []
    mw = CorrelationIdMiddleware(boom)
    scope = {"type": "http", "method": "POST", "path": "/pay", "headers": [(b"x-correlation-id", b"pay-1")]}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError):
        await mw(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 500 and (b"x-correlation-id", b"pay-1") in sent[0]["headers"]
    (access,) = logs.events("corrtrace.access")
    assert access["http"]["response"]["status_code"] == 500 and access["event"]["outcome"] == "failure"
    assert access["error"]["type"] == "RuntimeError" and access["correlation_id"] == "pay-1"


@pytest.mark.parametrize("placement", ["add_middleware", "outermost"])
async def test_fastapi_500_carries_the_id(placement: str) -> None:
    api = FastAPI()

    @api.get("/boom")
    async def boom() -> None:
        raise ValueError("nope")

    app: Any = api
    if placement == "add_middleware":
        api.add_middleware(CorrelationIdMiddleware, access_log=False)  # inside Starlette's ServerErrorMiddleware
    else:
        app = CorrelationIdMiddleware(api, access_log=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom", headers={"X-Correlation-ID": "fastapi-500"})
    assert response.status_code == 500
    assert response.headers.get_list("x-correlation-id") == ["fastapi-500"]


async def test_websocket_accept_carries_the_header() -> None:
    sent: list[dict[str, Any]] = []

    async def ws_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": None})
        await send({"type": "websocket.send", "text": corrtrace.get_correlation_id()})
        await send({"type": "websocket.close", "code": 1000})

    inbox = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-correlation-id", b"ws-7")], "client": ("1.2.3.4", 1)}
    await CorrelationIdMiddleware(ws_app)(scope, receive, send)
    assert sent[0]["type"] == "websocket.accept" and sent[0]["headers"] == [(b"x-correlation-id", b"ws-7")]
    assert sent[1]["text"] == "ws-7"


def test_websocket_through_starlette_testclient() -> None:
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient

    async def endpoint(websocket: Any) -> None:
        await websocket.accept()
        await websocket.send_text(corrtrace.get_correlation_id() or "")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    app.add_middleware(CorrelationIdMiddleware)
    with TestClient(app).websocket_connect("/ws", headers={"X-Correlation-ID": "ws-starlette"}) as ws:
        assert ws.receive_text() == "ws-starlette"


async def test_lifespan_and_other_scopes_pass_through_untouched() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope=scope, receive=receive, send=send, cid=corrtrace.get_correlation_id())

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await CorrelationIdMiddleware(app)(scope, receive, send)
    assert seen["scope"] is scope and seen["receive"] is receive and seen["send"] is send
    assert seen["cid"] is None and scope == {"type": "lifespan", "asgi": {"version": "3.0"}}


def test_starlette_lifespan_runs_with_the_middleware() -> None:
    from contextlib import asynccontextmanager

    from starlette.testclient import TestClient

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))], lifespan=lifespan)
    app.add_middleware(CorrelationIdMiddleware)
    with TestClient(app) as client:
        assert client.get("/").headers["x-correlation-id"]
    assert events == ["startup", "shutdown"]


async def _expose_case(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    messages = await call_asgi(CorrelationIdMiddleware(app), [(b"x-correlation-id", b"c-1")])
    return [v for k, v in messages[0]["headers"] if k == b"access-control-expose-headers"]


async def test_access_control_expose_headers_is_appended_never_overwritten() -> None:
    existing = [(b"access-control-expose-headers", b"X-Total-Count")]
    assert await _expose_case(existing) == [b"X-Total-Count, X-Correlation-ID"]
    already = [(b"access-control-expose-headers", b"x-correlation-id, X-Other")]
    assert await _expose_case(already) == [b"x-correlation-id, X-Other"]
    cors_only = [(b"access-control-allow-origin", b"https://shop.example")]
    assert await _expose_case(cors_only) == [b"X-Correlation-ID"]
    assert await _expose_case([(b"content-type", b"text/plain")]) == []  # not a CORS response: nothing added


async def test_response_headers_given_as_any_iterable_are_kept() -> None:
    """ASGI allows any iterable of header pairs: a generator was read twice and the app's headers were lost."""
    for make in (list, tuple, iter, lambda pairs: (pair for pair in pairs), lambda pairs: [list(p) for p in pairs]):

        async def app(scope: dict[str, Any], receive: Any, send: Any, make: Any = make) -> None:
            pairs = [(b"content-type", b"text/plain"), (b"x-total-count", b"3")]
            await send({"type": "http.response.start", "status": 200, "headers": make(pairs)})
            await send({"type": "http.response.body", "body": b""})

        messages = await call_asgi(CorrelationIdMiddleware(app), [(b"x-correlation-id", b"it-1")])
        assert [tuple(h) for h in messages[0]["headers"]] == [
            (b"content-type", b"text/plain"),
            (b"x-total-count", b"3"),
            (b"x-correlation-id", b"it-1"),
        ]


async def test_with_starlette_cors_middleware() -> None:
    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))])
    app.add_middleware(CORSMiddleware, allow_origins=["*"], expose_headers=["X-Total-Count"])
    app.add_middleware(CorrelationIdMiddleware)  # outermost: sees the CORS headers on the way out
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/", headers={"Origin": "https://shop.example", "X-Correlation-ID": "cors-1"})
    assert response.headers["access-control-expose-headers"] == "X-Total-Count, X-Correlation-ID"
    assert response.headers["x-correlation-id"] == "cors-1"


async def test_access_line_fields_and_switch_off(logs: LogCapture) -> None:
    await call_asgi(CorrelationIdMiddleware(seen_app), [(b"x-correlation-id", b"acc-1")], path="/orders", method="POST")
    (line,) = logs.events("corrtrace.access")
    assert line["correlation_id"] == "acc-1"
    assert line["http"]["request"]["method"] == "POST" and line["url"]["path"] == "/orders"
    assert line["http"]["response"]["status_code"] == 200 and line["event"]["outcome"] == "success"
    assert line["client"]["address"] == "10.1.2.3" and 0 < line["event"]["duration"] < 10**10
    assert line["log"]["logger"] == "corrtrace.access"
    await call_asgi(CorrelationIdMiddleware(seen_app, access_log=False), [(b"x-correlation-id", b"acc-2")])
    assert len(logs.events("corrtrace.access")) == 1


async def test_internal_error_is_logged_once_and_requests_go_on(logs: LogCapture) -> None:
    def broken() -> str:
        raise OSError("entropy pool on fire")

    mw = CorrelationIdMiddleware(seen_app, settings=CorrelationSettings(policy=IdPolicy(generator=broken)))
    bodies = [(await call_asgi(mw))[1]["body"] for _ in range(3)]
    assert len(set(bodies)) == 3 and all(len(b) == 32 for b in bodies)  # fallback IDs, still unique
    errors = [e for e in logs.events() if e["log"]["level"] == "ERROR"]
    assert len(errors) == 1 and "id-generator" in errors[0]["message"] and errors[0]["error"]["type"] == "OSError"
    assert mw.errors.count == 0  # the generator guard counted it, the request path never saw an error

    async def odd_headers(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": 12345})  # not iterable
        await send({"type": "http.response.body", "body": b"still delivered"})

    mw2 = CorrelationIdMiddleware(odd_headers, access_log=False)
    for _ in range(2):
        messages = await call_asgi(mw2)
        assert messages[0]["status"] == 201 and messages[1]["body"] == b"still delivered"
    assert mw2.errors.count == 2
    assert len([e for e in logs.events() if e["log"]["level"] == "ERROR"]) == 2  # one more kind, logged once


async def test_request_header_rewrite_shows_the_generated_id_to_the_app() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        values = [v for k, v in scope["headers"] if k == b"x-correlation-id"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b",".join(values)})

    mw = CorrelationIdMiddleware(app, update_request_header=True, access_log=False)
    messages = await call_asgi(mw, [(b"x-correlation-id", b"bad id\r\n")])
    assert messages[1]["body"] == response_header(messages, b"x-correlation-id")


async def test_id_survives_executor_threads_tasks_and_background_tasks() -> None:
    api = FastAPI()
    seen: dict[str, Any] = {}
    done = threading.Event()

    def record(key: str) -> None:
        seen[key] = corrtrace.get_correlation_id()

    @api.get("/work")
    async def work(background: BackgroundTasks) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        await context.run_in_executor(loop, None, record, "run_in_executor")
        thread = context.CorrelatedThread(target=record, args=("thread",))
        thread.start()
        thread.join()
        with context.CorrelatedThreadPoolExecutor(1) as pool:
            pool.submit(record, "pool").result()
        await asyncio.create_task(asyncio.to_thread(record, "to_thread"))

        async def in_task() -> None:
            record("task")

        await context.create_task(in_task())

        def later() -> None:
            record("background")
            done.set()

        background.add_task(later)
        return {"cid": corrtrace.get_correlation_id() or ""}

    api.add_middleware(CorrelationIdMiddleware, access_log=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as client:
        response = await client.get("/work", headers={"X-Correlation-ID": "carry-1"})
    assert done.wait(5)
    assert response.json() == {"cid": "carry-1"}
    assert seen == dict.fromkeys(["run_in_executor", "thread", "pool", "to_thread", "task", "background"], "carry-1")


def _raw_http(port: int, header_value: bytes) -> bytes:
    """Send one request over a real socket with an arbitrary header value (no client library sanitises it)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Correlation-ID: " + header_value + b"\r\n\r\n"
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_ids_over_a_real_uvicorn_socket(uvicorn_server: Any) -> None:
    async def sized_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = (corrtrace.get_correlation_id() or "").encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with uvicorn_server(CorrelationIdMiddleware(sized_app, access_log=False)) as server:
        for raw in (b"a" * 10_000, "caf\u00e9".encode(), b'{"a": 1}', b"inner space", b"ok-id-1"):
            response = _raw_http(server.port, raw)
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            echoed = [
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"x-correlation-id:")
            ]
            assert len(echoed) == 1 and echoed[0] == body
            if raw == b"ok-id-1":
                assert body == raw
            else:
                assert UUID7.fullmatch(body.decode())


async def test_concurrent_requests_over_a_real_server(uvicorn_server: Any) -> None:
    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(random.random() / 50)
        await seen_app(scope, receive, send)

    with uvicorn_server(CorrelationIdMiddleware(slow_app, access_log=False)) as server:
        async with httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=50)) as client:
            ids = [f"live-{i}" for i in range(100)]
            responses = await asyncio.gather(*(client.get("/", headers={"X-Correlation-ID": i}) for i in ids))
    assert [r.text for r in responses] == ids
    assert [r.headers["x-correlation-id"] for r in responses] == ids


async def test_an_id_with_a_quote_the_policy_allows_is_escaped_in_the_access_line(tmp_path: Path) -> None:
    """The access line takes the echoed ID bytes as they are only when the policy makes them JSON-safe (the
    line written directly to ``configure``'s file, its only destination)."""
    import logging

    from corrtrace.logging import configure

    parent = logging.getLogger("quote-test")
    handler = configure("svc", path=tmp_path / "access.log", logger=parent)
    parent.propagate = False
    policy = IdPolicy(allowed_pattern=r'[A-Za-z"\\]+')
    app = CorrelationIdMiddleware(seen_app, policy=policy, access_logger="quote-test.access")
    try:
        messages = await call_asgi(app, [(b"x-correlation-id", b'ab"c\\d')])
    finally:
        parent.removeHandler(handler)
        handler.close()
        parent.propagate = True
    assert response_header(messages, b"x-correlation-id") == b'ab"c\\d'
    (line,) = (tmp_path / "access.log").read_bytes().splitlines()
    assert orjson.loads(line)["correlation_id"] == 'ab"c\\d'
