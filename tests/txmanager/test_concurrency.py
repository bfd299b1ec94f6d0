"""Duplicate triggers in parallel, on two manager instances sharing one table: each participant once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from corrtrace.txmanager import TxManagerClient, create_app
from corrtrace.txmanager.fanout import FanOut
from corrtrace.txmanager.notify import Notifier
from corrtrace.txmanager.store import IN_PROGRESS, ROLLBACK, SUCCEEDED, Store, Transaction

from corrtrace import new_correlation_id
from tests.txmanager.conftest import SECRET, Mesh, Recorder, participant_app


def test_50_concurrent_duplicate_triggers_roll_each_participant_back_once(mesh, settings, store, servers, free_port):
    # 50 client threads, two managers and three participants share this process: on a loaded host one 50 ms
    # participant call can take seconds. It must not outlive participant_timeout (then it would rightly be retried,
    # a second hit): the timeout here is generous, since what is tested is deduplication, not timeouts
    settings.participant_timeout = 30.0
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
    status = m.wait(cid, ("rolled_back", "failed"), timeout=120)  # returns as soon as it is final
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


class _KickRecorder(FanOut):
    """A fan-out that records which transactions a sweep hands to it instead of driving them."""

    kicked: list[str]

    def kick(self, correlation_id: str, current: Transaction | None = None) -> None:
        self.kicked.append(correlation_id)


def test_the_sweep_leaves_a_transaction_started_since_the_last_sweep_to_its_driver(settings, store) -> None:
    fanout = _KickRecorder(settings, store, Notifier(settings), secret=SECRET)
    fanout.kicked = []
    old, new = new_correlation_id(), new_correlation_id()
    for cid in (old, new):
        store.register(cid, "svc", "http://127.0.0.1:9/corrtrace/rollback/{id}", None)
    store.begin(old, ROLLBACK, "r", "s")

    async def sweeps() -> None:
        await fanout.resume()  # at start: every unfinished transaction (a restart resumes them all)
        assert fanout.kicked == [old]
        store.begin(new, ROLLBACK, "r", "s")  # a live instance is driving it right now
        fanout.kicked.clear()
        await fanout.resume()
        assert fanout.kicked == [old]  # only the one left unfinished for a whole interval
        fanout.kicked.clear()
        await fanout.resume()
        assert sorted(fanout.kicked) == sorted([old, new])  # still unfinished a sweep later: driven here too
        await fanout.aclose()

    asyncio.run(sweeps())


def test_waiting_on_another_holders_lease_reads_the_participant_a_few_times_not_every_poll(
    settings, store, servers, free_port
) -> None:
    rec = Recorder("svc")
    participant = servers(participant_app(rec), free_port())
    cid = new_correlation_id()
    store.register(cid, "svc", f"{participant.url}/corrtrace/rollback/{{id}}", None)
    tx, _ = store.begin(cid, ROLLBACK, "r", "s")
    held = store.claim(cid, "svc", "another-instance", lease_seconds=2.0)  # its holder "died" mid-call
    assert held is not None
    fanout = FanOut(settings, store, Notifier(settings), secret=SECRET)
    reads: list[str] = []
    store.client.meta.events.register("before-call.dynamodb.GetItem", lambda **_: reads.append("GetItem"))

    async def settle() -> None:
        await fanout._settle_participant(tx, held)  # waits out the lease, then makes the call itself
        await fanout.aclose()

    asyncio.run(settle())
    assert rec.count("rollback") == 1 and rec.hits["rollback"] == 1
    # 2 s of lease at poll_interval 0.05 s were ~40 reads; doubling waits make it about 6
    assert settings.poll_interval == 0.05 and len(reads) <= 10, len(reads)
