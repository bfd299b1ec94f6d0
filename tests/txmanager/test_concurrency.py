"""Duplicate triggers in parallel, on two manager instances sharing one table: each participant once."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from corrtrace.txmanager import TxManagerClient, create_app
from corrtrace.txmanager.store import IN_PROGRESS, SUCCEEDED, Store

from corrtrace import new_correlation_id
from tests.txmanager.conftest import SECRET, Mesh, Recorder


def test_50_concurrent_duplicate_triggers_roll_each_participant_back_once(mesh, settings, store, servers, free_port):
    recs = {name: Recorder(name, delay=0.05) for name in ("cart", "payment", "stock")}
    m: Mesh = mesh(**recs)
    second = servers(create_app(settings, store=store), free_port())  # another instance, same table
    cid = new_correlation_id()
    m.register(cid, "cart", "payment", "stock")

    clients = [m.client, TxManagerClient(second.url, SECRET, timeout=30)]
    barrier = threading.Barrier(50)

    def trigger(i: int) -> bool:
        barrier.wait()
        return bool(clients[i % 2].rollback(cid, reason=f"dup {i}", source="alert")["started"])

    with ThreadPoolExecutor(50) as pool:
        started = list(pool.map(trigger, range(50)))
    clients[1].close()

    assert started.count(True) == 1  # exactly one trigger started it; 49 were counted as duplicates
    status = m.wait(cid, ("rolled_back", "failed"))
    assert status["state"] == "rolled_back" and status["triggers"] == 50
    for rec in recs.values():
        assert rec.hits["rollback"] == 1, rec.name  # not merely deduped by the participant: called once
        assert rec.count("rollback") == 1, rec.name


def test_only_one_of_50_threads_can_claim_a_participant_call(store: Store) -> None:
    cid = new_correlation_id()
    store.register(cid, "svc", "http://127.0.0.1:9/corrtrace/rollback/{id}", None)
    store.begin(cid, "rollback", "r", "s")
    barrier = threading.Barrier(50)

    def claim(i: int) -> bool:
        barrier.wait()
        return store.claim(cid, "svc", f"owner-{i}", lease_seconds=30) is not None

    with ThreadPoolExecutor(50) as pool:
        wins = Counter(pool.map(claim, range(50)))
    assert wins[True] == 1
    participant = store.participant(cid, "svc")
    assert participant is not None and participant.state == IN_PROGRESS and participant.attempts == 1
    # only the holder may settle it
    assert store.settle(cid, "svc", "someone-else", SUCCEEDED) is None
    settled = store.settle(cid, "svc", participant.lease_owner or "", SUCCEEDED)
    assert settled is not None and settled.state == SUCCEEDED
    assert store.claim(cid, "svc", "late", lease_seconds=30) is None  # a succeeded participant is never due again
