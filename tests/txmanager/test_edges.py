"""Edges of the fan-out: a call that times out is retried and deduped, a Flask participant, async callbacks,
a participant without a commit endpoint, a failure notice that could not be sent is sent on restart, and a
log store that cannot be searched starts nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
from corrtrace.txmanager import TxManagerClient, create_app, participant_blueprint, participant_router
from fastapi import FastAPI
from flask import Flask
from werkzeug.serving import make_server

from corrtrace import new_correlation_id
from corrtrace.signing import sign_request
from tests.txmanager.conftest import SECRET, Mesh, Recorder


def test_a_timed_out_call_is_retried_and_the_participant_rolls_back_once(mesh, settings, store, servers, free_port):
    slow = Recorder("slow", delay=1.0)
    m: Mesh = mesh(slow=slow)
    quick = replace(settings, participant_timeout=0.4, lease_margin=0.2, max_attempts=10)
    manager = servers(create_app(quick, store=store), free_port())
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET) as client:
        m.register(cid, "slow")
        client.rollback(cid)
        status = Mesh(manager, client, {}, {}).wait(cid, ("rolled_back", "failed"))
    assert status["state"] == "rolled_back"
    assert status["participants"][0]["attempts"] >= 2  # the first call timed out
    assert slow.hits["rollback"] >= 2 and slow.count() == 1


def test_manager_rolls_back_a_flask_participant_and_skips_a_missing_commit_endpoint(mesh, free_port) -> None:
    rec = Recorder("flask-svc")
    app = Flask("flask-svc")
    app.register_blueprint(participant_blueprint(SECRET, rec.callback("rollback"), rec.callback("commit")))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fast = Recorder("fast")
    m: Mesh = mesh(fast=fast)
    try:
        cid, staged = new_correlation_id(), new_correlation_id()
        m.client.register(cid, "flask-svc", f"http://127.0.0.1:{port}/corrtrace/rollback/{{id}}")
        m.client.rollback(cid)
        assert m.wait(cid, ("rolled_back", "failed"))["state"] == "rolled_back"
        assert rec.count("rollback") == 1

        m.client.register(staged, "flask-svc", f"http://127.0.0.1:{port}/corrtrace/rollback/{{id}}")  # no commit url
        m.register(staged, "fast")
        m.client.commit(staged)
        status = m.wait(staged, ("committed", "failed"))
        states = {p["service"]: p["state"] for p in status["participants"]}
        assert states == {"flask-svc": "skipped", "fast": "succeeded"}
        assert rec.count("commit") == 0 and fast.count("commit") == 1
    finally:
        server.shutdown()


def test_async_callbacks_run_once_under_concurrent_duplicates(servers, free_port) -> None:
    effects: list[str] = []

    async def on_rollback(correlation_id: str, payload: dict[str, Any]) -> dict[str, int]:
        await asyncio.sleep(0.2)
        effects.append(correlation_id)
        return {"n": len(effects)}

    app = FastAPI()
    app.include_router(participant_router(SECRET, on_rollback))
    url = servers(app, free_port()).url
    cid = new_correlation_id()
    path = f"/corrtrace/rollback/{cid}"
    answers: list[dict[str, Any]] = []

    def post() -> None:
        answers.append(httpx.post(url + path, content=b"{}", headers=sign_request(SECRET, "POST", path, b"{}")).json())

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert effects == [cid]
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 5
    assert all(a["result"] == {"n": 1} for a in answers)
    commit_path = f"/corrtrace/commit/{cid}"
    no_commit = httpx.post(url + commit_path, content=b"{}", headers=sign_request(SECRET, "POST", commit_path, b"{}"))
    assert no_commit.status_code == 404


def test_a_failure_notice_that_could_not_be_sent_is_sent_on_restart(aws, settings, store, servers, free_port):
    broken = Recorder("broken", fail_first=100)
    from tests.txmanager.conftest import participant_app

    url = servers(participant_app(broken), free_port()).url
    topic = "arn:aws:sns:us-east-1:123456789012:created-later"
    failing = replace(settings, sns_topic_arn=topic, max_attempts=1)
    first = servers(create_app(failing, store=store), free_port())
    cid = new_correlation_id()
    with TxManagerClient(first.url, SECRET) as client:
        client.register(cid, "broken", f"{url}/corrtrace/rollback/{{id}}")
        client.rollback(cid)
        assert Mesh(first, client, {}, {}).wait(cid, ("failed",))["state"] == "failed"
    time.sleep(0.3)
    assert list(store.unfinished()) == [cid]  # the topic does not exist yet: the notice is still owed

    sns, sqs = aws("sns"), aws("sqs")
    assert sns.create_topic(Name="created-later")["TopicArn"] == topic
    queue = sqs.create_queue(QueueName="later")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

    servers(create_app(failing, store=store), free_port())  # a restart resumes what is unfinished
    deadline = time.time() + 10
    while list(store.unfinished()) and time.time() < deadline:
        time.sleep(0.05)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) == 1 and cid in messages[0]["Body"]
    assert broken.hits["rollback"] == 1  # resuming did not call the failed participant again


def test_discovery_failure_starts_nothing(settings, store, servers, free_port) -> None:
    def unreachable(correlation_id: str) -> list[Any]:
        raise ConnectionError("log store down")

    manager = servers(create_app(settings, store=store, discover=unreachable), free_port())
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET, retries=0) as client:
        try:
            client.rollback(cid)
            raise AssertionError("expected 503")
        except Exception as exc:
            assert getattr(exc, "status", None) == 503
    assert store.get(cid) is None


def test_retry_failed_gives_only_the_failed_participant_a_new_budget(settings, store, servers, free_port) -> None:
    from tests.txmanager.conftest import participant_app

    fixed_later, fine = Recorder("fixed-later", fail_first=2), Recorder("fine")
    urls = {r.name: servers(participant_app(r), free_port()).url for r in (fixed_later, fine)}
    manager = servers(create_app(replace(settings, max_attempts=2), store=store), free_port())
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET) as client:
        for name, base in urls.items():
            client.register(cid, name, f"{base}/corrtrace/rollback/{{id}}")
        client.rollback(cid)
        waiter = Mesh(manager, client, {}, urls)
        assert waiter.wait(cid, ("rolled_back", "failed"))["state"] == "failed"
        assert client.rollback(cid)["retried"] == []  # a plain duplicate does not retry anything
        answer = client.rollback(cid, retry_failed=True, reason="participant fixed")
        assert answer["retried"] == ["fixed-later"]
        status = waiter.wait(cid, ("rolled_back",))
    assert {p["service"]: p["attempts"] for p in status["participants"]} == {"fixed-later": 1, "fine": 1}
    assert fixed_later.hits["rollback"] == 3 and fixed_later.count() == 1
    assert fine.hits["rollback"] == 1 and fine.count() == 1


def test_an_unserialisable_callback_result_still_answers_200(servers, free_port) -> None:
    done: list[str] = []

    def on_rollback(correlation_id: str, payload: dict[str, Any]) -> object:
        done.append(correlation_id)
        return object()

    app = FastAPI()
    app.include_router(participant_router(SECRET, on_rollback))
    url = servers(app, free_port()).url
    cid = new_correlation_id()
    path = f"/corrtrace/rollback/{cid}"
    for duplicate in (False, True):
        answer = httpx.post(url + path, content=b"{}", headers=sign_request(SECRET, "POST", path, b"{}"))
        assert answer.status_code == 200 and answer.json()["duplicate"] is duplicate
        assert answer.json()["result"].startswith("<object object")
    assert done == [cid]
