"""Participants slower than the timeout, participants down for long, and transactions that end (issue 10 §5,
issue 14 §4): idempotency keys, the ``unknown`` state, the slow background retry, ``open_ttl`` and TTL items.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from corrtrace.txmanager import SqliteLedger, TxManagerClient, create_app, participant_router
from corrtrace.txmanager.fanout import IDEMPOTENCY_HEADER
from corrtrace.txmanager.store import Store

from corrtrace import new_correlation_id
from corrtrace.cli import main
from corrtrace.signing import sign_request
from tests.txmanager.conftest import SECRET, Mesh, Recorder, participant_app


def _slow_app(recorder: Recorder, seconds: float, keys: list[str]) -> Any:
    """A participant whose every answer comes ``seconds`` late (after its callback ran), recording the keys."""
    app = participant_app(recorder)

    @app.middleware("http")
    async def slow(request: Any, call_next: Any) -> Any:
        keys.append(request.headers.get(IDEMPOTENCY_HEADER, ""))
        response = await call_next(request)
        await asyncio.sleep(seconds)
        return response

    return app


def test_a_participant_slower_than_the_timeout_is_unknown_never_failed_and_runs_once(
    settings, store, servers, free_port
) -> None:
    settings = replace(settings, participant_timeout=0.5, max_attempts=3)
    rec, keys = Recorder("slow"), []
    slow = servers(_slow_app(rec, 0.8, keys), free_port())
    manager = servers(create_app(settings, store=store), free_port())
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET) as client:
        client.register(cid, "slow", f"{slow.url}/corrtrace/rollback/{{id}}")
        client.rollback(cid, reason="timeout repro")
        status = Mesh(manager, client, {}, {}).wait(cid, ("rolled_back", "failed", "unknown"))

    (participant,) = status["participants"]
    assert participant["state"] == "unknown" and participant["attempts"] == 3  # retried, never "failed"
    assert status["state"] == "unknown" and participant["last_error"] == "timed out"
    assert rec.hits["rollback"] == 3 and rec.count() == 1  # called three times, rolled back once (deduped)
    assert keys == [f"rollback:{cid}:slow"] * 3  # the same idempotency key on every attempt


def test_the_idempotency_key_is_kept_in_a_file_across_restarts_and_processes(tmp_path: Path, servers, free_port):
    path = tmp_path / "ledger.sqlite"
    ran: list[str] = []

    def undo(correlation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.2)
        ran.append(correlation_id)
        return {"undone": correlation_id}

    from fastapi import FastAPI

    def service() -> str:  # a fresh app and ledger object on the same file: a restarted service
        app = FastAPI()
        app.include_router(participant_router(SECRET, undo, ledger=SqliteLedger(path)))
        return servers(app, free_port()).url

    first, second = service(), service()
    cid = new_correlation_id()
    route = f"/corrtrace/rollback/{cid}"

    def post(base: str, key: str, header: str | None = None) -> Any:
        import httpx

        body = f'{{"correlation_id": "{cid}", "idempotency_key": "{key}"}}'.encode()
        headers = sign_request(SECRET, "POST", route, body)
        headers[IDEMPOTENCY_HEADER] = header or key
        return httpx.post(base + route, content=body, headers=headers, timeout=10)

    key = f"rollback:{cid}:payment"
    with ThreadPoolExecutor(2) as pool:  # the same key on two "processes" at once: one runs, one waits
        answers = list(pool.map(lambda base: post(base, key).json(), [first, second]))
    assert sorted(a["duplicate"] for a in answers) == [False, True] and ran == [cid]
    assert post(service(), key).json()["duplicate"] is True and ran == [cid]  # after a "restart"
    assert post(first, f"rollback:{cid}:stock").json()["duplicate"] is False and ran == [cid, cid]  # another key
    mismatch = post(first, key, header=f"rollback:{cid}:other")
    assert mismatch.status_code == 400 and ran == [cid, cid]
    foreign = post(first, f"rollback:{new_correlation_id()}:payment")  # a key of another transaction
    assert foreign.status_code == 400 and ran == [cid, cid]


def test_a_participant_down_longer_than_the_budget_heals_by_the_slow_retry(settings, store, servers, free_port):
    settings = replace(
        settings, max_attempts=2, slow_retry_for=3600, slow_retry_initial=8.0, slow_retry_max=8.0, resume_interval=0.2
    )
    rec = Recorder("stock")
    port = free_port()  # nothing listens there yet: connection refused
    manager = servers(create_app(settings, store=store), free_port())
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET) as client:
        client.register(cid, "stock", f"http://127.0.0.1:{port}/corrtrace/rollback/{{id}}")
        client.rollback(cid, reason="outage")
        status = Mesh(manager, client, {}, {}).wait(cid, ("failed",))
        (down,) = status["participants"]
        assert down["state"] == "failed" and down["attempts"] == 2 and down["last_error"] == "ConnectError"
        assert status["next_attempt_at"] == down["next_attempt_at"] and status["next_attempt_at"] > time.time()

        shown = CliRunner().invoke(
            main,
            ["txmanager", "status", cid, "--url", manager.url],
            env={"CORRTRACE_TXMANAGER_SECRET": SECRET, "CORRTRACE_CONFIG": ""},
        )
        assert shown.exit_code == 0, shown.output
        assert "next_attempt_at: 20" in shown.output and " s)" in shown.output

        servers(participant_app(rec), port)  # the outage ends
        healed = Mesh(manager, client, {}, {}).wait(cid, ("rolled_back",), timeout=15)
    (up,) = healed["participants"]
    assert up["state"] == "succeeded" and up["attempts"] == 3 and rec.count() == 1
    assert healed["next_attempt_at"] is None
    deadline = time.time() + 5
    while list(store.unfinished()) and time.time() < deadline:
        time.sleep(0.05)
    assert list(store.unfinished()) == []  # nothing left for the sweep


@pytest.mark.parametrize("action", ["expire", "rollback"])
def test_an_open_transaction_past_open_ttl_is_ended_by_the_sweep(
    action, aws, settings, store, mesh, servers, free_port
):
    recs = {"cart": Recorder("cart")}
    m: Mesh = mesh(**recs)  # a manager without the sweep: it only registers
    swept = replace(settings, open_ttl=60, open_ttl_action=action, resume_interval=0.2)
    cid, fresh = new_correlation_id(), new_correlation_id()
    m.register(cid, "cart")
    m.register(fresh, "cart")  # younger than open_ttl: left alone
    assert m.client.status(cid)["state"] == "open"
    aws("dynamodb").update_item(  # as if it had been opened two minutes ago
        TableName=settings.table_name,
        Key={"pk": {"S": f"TX#{cid}"}, "sk": {"S": "TX"}},
        UpdateExpression="SET created_at = :then",
        ExpressionAttributeValues={":then": {"N": str(time.time() - 120)}},
    )
    sweeper = servers(create_app(swept, store=store), free_port())
    with TxManagerClient(sweeper.url, SECRET) as client:
        ended = Mesh(sweeper, client, {}, {}).wait(cid, ("expired", "rolled_back"), timeout=10)
        assert client.status(fresh)["state"] == "open"
    if action == "expire":
        assert ended["state"] == "expired" and recs["cart"].hits["rollback"] == 0
    else:
        assert ended["state"] == "rolled_back" and ended["source"] == "ttl" and recs["cart"].count() == 1
    assert ended["expires"] >= time.time() + settings.finished_retention - 60


def test_finished_items_carry_a_ttl_and_the_table_has_ttl_enabled(aws, settings, store, mesh) -> None:
    ttl = aws("dynamodb").describe_time_to_live(TableName=settings.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    m: Mesh = mesh(a=Recorder("a"), b=Recorder("b"))
    cid = new_correlation_id()
    m.register(cid, "a", "b")
    open_tx = store.get(cid)
    assert open_tx is not None and open_tx.expires is not None  # a backstop: open_ttl + retention
    assert open_tx.expires >= time.time() + settings.open_ttl + settings.finished_retention - 60
    m.client.rollback(cid)
    m.wait(cid, ("rolled_back",))
    items = aws("dynamodb").query(
        TableName=settings.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"TX#{cid}"}},
        ConsistentRead=True,
    )["Items"]
    assert len(items) == 3
    now = time.time()
    for item in items:  # the transaction and both participants expire `finished_retention` after finishing
        assert now + settings.finished_retention - 60 <= int(item["expires"]["N"]) <= now + settings.finished_retention


def test_a_slow_callback_answers_the_retry_as_a_duplicate_across_threads(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite", stale_after=5)
    runs: list[int] = []
    barrier = threading.Barrier(8)

    def work() -> int:
        time.sleep(0.1)
        runs.append(1)
        return 7

    def call(_: int) -> tuple[Any, bool]:
        barrier.wait()
        return ledger.run("rollback:x:y", work)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert runs == [1] and sorted(dup for _, dup in results) == [False] + [True] * 7
    assert {value for value, _ in results} == {7}


def test_store_conflict_when_registering_into_a_commit(store: Store) -> None:
    from corrtrace.txmanager.store import COMMIT, ConflictError

    cid = new_correlation_id()
    store.register(cid, "a", "http://127.0.0.1:9/r", None)
    store.begin(cid, COMMIT, None, None)
    with pytest.raises(ConflictError):
        store.register(cid, "b", "http://127.0.0.1:9/r", None)


def test_a_three_participant_rollback_takes_at_most_12_dynamodb_calls(settings, servers, free_port) -> None:
    store = Store(settings)
    store.create_table()
    calls: list[str] = []
    store.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    recs = {name: Recorder(name) for name in ("a", "b", "c")}
    urls = {name: servers(participant_app(rec), free_port()).url for name, rec in recs.items()}
    manager = servers(create_app(settings, store=store), free_port())
    deadline = time.time() + 20
    while len(calls) < 3:  # the start-up sweep: unfinished rollbacks, commits, open transactions
        assert time.time() < deadline, calls
        time.sleep(0.05)
    time.sleep(0.2)
    calls.clear()
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET) as client:
        m = Mesh(manager, client, recs, urls)
        m.register(cid, "a", "b", "c")
        assert len(calls) == 9  # nonce, transaction, participant: 3 each
        before = len(calls)
        client.rollback(cid)
        observer, deadline = Store(settings), time.time() + 20  # its reads are not counted
        while (tx := observer.get(cid)) is None or tx.state != "rolled_back":
            assert time.time() < deadline, calls[before:]
            time.sleep(0.05)
        time.sleep(0.3)  # nothing follows the finishing write
        rollback = calls[before:]
        before = len(calls)
        assert client.status(cid)["state"] == "rolled_back"
        assert len(calls) - before == 2  # nonce + one query
    assert len(rollback) <= 12, rollback
