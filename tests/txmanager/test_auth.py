"""Unsigned, tampered and replayed calls get 401 and change nothing: the manager, the FastAPI router and the
Flask blueprint. A replay is refused by the instance that saw the call, by another instance, and after restart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from corrtrace.txmanager import create_app, participant_blueprint
from werkzeug.serving import make_server

from corrtrace import new_correlation_id
from corrtrace.signing import sign_request
from tests.txmanager.conftest import SECRET, Mesh, Recorder, participant_app

Call = tuple[str, str, bytes]


def _calls(cid: str, participant_url: str) -> list[Call]:
    register = json.dumps(
        {"service": "evil", "rollback_url": f"{participant_url}/corrtrace/rollback/{{id}}", "commit_url": None}
    ).encode()
    return [
        ("POST", f"/transactions/{cid}/participants", register),
        ("POST", f"/transactions/{cid}/rollback", b'{"reason": "forged"}'),
        ("POST", f"/transactions/{cid}/commit", b"{}"),
        ("GET", f"/transactions/{cid}", b""),
    ]


def _send(base: str, method: str, path: str, body: bytes, headers: dict[str, Any]) -> httpx.Response:
    return httpx.request(method, base + path, content=body, headers={**headers, "Content-Type": "application/json"})


def _forgeries(method: str, path: str, body: bytes) -> Iterator[tuple[str, str, bytes, dict[str, Any]]]:
    """(what, path, body, headers): unsigned, wrong secret, body/path/method tampered, stale."""
    yield "unsigned", path, body, {}
    yield "wrong secret", path, body, sign_request("not-the-secret", method, path, body)
    tampered_body = body + b" " if body else b'{"x": 1}'
    yield "body tampered", path, tampered_body, sign_request(SECRET, method, path, body)
    yield "path tampered", path, body, sign_request(SECRET, method, path + "x", body)
    yield "stale", path, body, sign_request(SECRET, method, path, body, now=time.time() - 3600)
    bad_sig = dict(sign_request(SECRET, method, path, body))
    bad_sig["X-Corrtrace-Signature"] = "v1=" + "0" * 64
    yield "signature replaced", path, body, bad_sig
    # headers no client of ours writes: as latin-1 bytes on the wire, the way a server decodes them
    for name, value in (
        ("X-Corrtrace-Timestamp", b"\xb2"),  # superscript two: a digit to str.isdigit, not to int()
        ("X-Corrtrace-Timestamp", b"9" * 5000),  # past int()'s digit limit
        ("X-Corrtrace-Signature", b"v1=" + b"\xe9" * 64),  # compare_digest refuses non-ASCII text
    ):
        malformed: dict[str, Any] = {**sign_request(SECRET, method, path, body), name: value}
        yield f"malformed {name}", path, body, malformed


def test_forged_calls_to_the_manager_get_401_and_change_nothing(mesh) -> None:
    victim = Recorder("victim")
    m: Mesh = mesh(victim=victim)
    cid = new_correlation_id()
    untouched = new_correlation_id()
    m.register(untouched, "victim")
    for method, path, body in _calls(cid, m.urls["victim"]) + _calls(untouched, m.urls["victim"]):
        for what, sent_path, sent_body, headers in _forgeries(method, path, body):
            response = _send(m.manager.url, method, sent_path, sent_body, headers)
            assert response.status_code == 401, (what, method, path, response.text)
            assert SECRET not in response.text
    time.sleep(0.2)
    with pytest.raises(Exception, match="404"):
        m.client.status(cid)
    status = m.client.status(untouched)
    assert status["state"] == "open" and status["triggers"] == 0
    assert [p["service"] for p in status["participants"]] == ["victim"]
    assert victim.hits["rollback"] == 0 and victim.hits["commit"] == 0


def test_a_replayed_manager_call_is_refused_here_on_another_instance_and_after_restart(
    mesh, settings, store, servers, free_port
) -> None:
    victim = Recorder("victim")
    m: Mesh = mesh(victim=victim)
    cid = new_correlation_id()
    base = m.urls["victim"]
    path = f"/transactions/{cid}/participants"
    body = json.dumps({"service": "victim", "rollback_url": f"{base}/corrtrace/rollback/{{id}}"}).encode()
    headers = sign_request(SECRET, "POST", path, body)
    assert _send(m.manager.url, "POST", path, body, headers).status_code == 201

    other = servers(create_app(settings, store=store), free_port())
    restarted = servers(create_app(settings, store=store), free_port())  # fresh process memory, same table
    for target in (m.manager.url, other.url, restarted.url):
        replay = _send(target, "POST", path, body, headers)
        assert replay.status_code == 401 and "replayed" in replay.json()["detail"]

    trigger_path = f"/transactions/{cid}/rollback"
    trigger = sign_request(SECRET, "POST", trigger_path, b"{}")
    assert _send(m.manager.url, "POST", trigger_path, b"{}", trigger).status_code == 202
    m.wait(cid, ("rolled_back",))
    assert _send(other.url, "POST", trigger_path, b"{}", trigger).status_code == 401
    assert m.client.status(cid)["triggers"] == 1
    assert victim.hits["rollback"] == 1


def _flask_server(recorder: Recorder, port: int) -> Any:
    from flask import Flask

    app = Flask("participant")
    app.register_blueprint(
        participant_blueprint(SECRET, recorder.callback("rollback"), recorder.callback("commit"), max_body=1024)
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(params=["fastapi", "flask"])
def participant(request, servers, free_port) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder("svc")
    port = free_port()
    if request.param == "fastapi":
        yield servers(participant_app(recorder), port).url, recorder
        return
    server = _flask_server(recorder, port)
    yield f"http://127.0.0.1:{port}", recorder
    server.shutdown()


def test_participant_endpoints_refuse_forged_calls_and_dedupe_genuine_ones(
    participant: tuple[str, Recorder],
) -> None:
    url, recorder = participant
    cid = new_correlation_id()
    for action in ("rollback", "commit"):
        path = f"/corrtrace/{action}/{cid}"
        body = json.dumps({"correlation_id": cid, "action": action}).encode()
        calls_before = recorder.calls
        for what, sent_path, sent_body, headers in _forgeries("POST", path, body):
            response = httpx.post(url + sent_path, content=sent_body, headers=headers)
            assert response.status_code == 401, (what, action, response.text)
        assert recorder.count(action) == 0 and recorder.calls == calls_before

        genuine = sign_request(SECRET, "POST", path, body)
        first = httpx.post(url + path, content=body, headers=genuine)
        assert first.status_code == 200 and first.json()["duplicate"] is False
        replay = httpx.post(url + path, content=body, headers=genuine)
        assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
        again = httpx.post(url + path, content=body, headers=sign_request(SECRET, "POST", path, body))
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert again.json()["result"] == {"undone_by": "svc", "attempt": None}
        assert recorder.count(action) == 1

    huge = b"{" + b" " * 70000 + b"}"
    big_path = f"/corrtrace/rollback/{new_correlation_id()}"
    too_big = httpx.post(url + big_path, content=huge, headers=sign_request(SECRET, "POST", big_path, huge))
    assert too_big.status_code == 413
    bad_id = "bad id!"
    path = f"/corrtrace/rollback/{bad_id}"
    refused = httpx.post(url + path, content=b"{}", headers=sign_request(SECRET, "POST", path, b"{}"))
    assert refused.status_code == 400
    assert recorder.calls == 2


def test_a_failing_callback_answers_500_and_runs_again_on_retry(participant: tuple[str, Recorder]) -> None:
    url, recorder = participant
    recorder.fail_first = 1
    cid = new_correlation_id()
    path = f"/corrtrace/rollback/{cid}"

    def post() -> httpx.Response:
        return httpx.post(url + path, content=b"{}", headers=sign_request(SECRET, "POST", path, b"{}"))

    assert post().status_code == 500
    assert post().json()["duplicate"] is False
    assert post().json()["duplicate"] is True
    assert recorder.calls == 2 and recorder.count() == 1


def test_concurrent_duplicate_calls_run_the_callback_once(participant: tuple[str, Recorder]) -> None:
    url, recorder = participant
    recorder.delay = 0.2
    cid = new_correlation_id()
    path = f"/corrtrace/rollback/{cid}"
    results: list[Callable[[], Any]] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        r = httpx.post(url + path, content=b"{}", headers=sign_request(SECRET, "POST", path, b"{}"), timeout=10)
        results.append(r.json)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flags = sorted(r()["duplicate"] for r in results)
    assert flags == [False] + [True] * 7
    assert recorder.count() == 1


def test_hmac_auth_signs_any_httpx_client_and_every_retry_is_a_new_call(mesh) -> None:
    """``HmacAuth`` is an ``httpx.Auth``: a plain httpx client can call the manager; each send gets a fresh nonce,
    so sending the same request twice is two genuine calls, not a replay; a wrong secret is still refused."""
    from corrtrace.txmanager import HmacAuth

    victim = Recorder("victim")
    m: Mesh = mesh(victim=victim)
    cid = new_correlation_id()
    m.register(cid, "victim")
    nonces: list[str] = []
    hooks = {"request": [lambda r: nonces.append(r.headers["X-Corrtrace-Nonce"])]}
    with httpx.Client(base_url=m.manager.url, auth=HmacAuth(SECRET), event_hooks=hooks) as client:
        request = client.build_request("GET", f"/transactions/{cid}")
        first, second = client.send(request), client.send(request)  # the manager refuses a reused nonce
        assert first.status_code == 200 and second.status_code == 200, second.text
        assert len(set(nonces)) == 2
        rolled = client.post(f"/transactions/{cid}/rollback", json={"reason": "via httpx.Auth"})
        assert rolled.status_code in (200, 202), rolled.text
    with httpx.Client(base_url=m.manager.url, auth=HmacAuth("not-the-secret")) as client:
        assert client.get(f"/transactions/{cid}").status_code == 401
    with pytest.raises(ValueError, match="secret"):
        HmacAuth("")


@pytest.mark.parametrize(
    ("declared", "manager_status", "participant_status"),
    [(b"\xb2", 202, 200), (b"9" * 5000, 202, 200)],
    ids=["superscript-digit", "5000-digits"],
)
def test_a_malformed_content_length_is_no_500(
    settings, store, declared: bytes, manager_status: int, participant_status: int
) -> None:
    """The declared length is read before the body: a header an HTTP server would not pass on (uvicorn's parser
    refuses both) must not break the manager or a participant when another server does: a length that is not a
    plain number is ignored (the body read is capped anyway). The apps are called over ASGI in-process for that
    reason."""

    async def send(app: Any, path: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            headers = {**sign_request(SECRET, "POST", path, b"{}"), "content-length": declared}
            return (await client.post(path, content=b"{}", headers=headers)).status_code

    cid = new_correlation_id()
    manager = asyncio.run(send(create_app(settings, store=store), f"/transactions/{cid}/rollback"))
    recorder = Recorder("svc")
    participant = asyncio.run(send(participant_app(recorder), f"/corrtrace/rollback/{cid}"))
    assert (manager, participant) == (manager_status, participant_status)
    assert recorder.calls == (participant_status == 200)
