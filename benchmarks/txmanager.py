"""The transaction manager's cost per transaction: DynamoDB calls per operation, then throughput at scale.

1. Calls: a manager in this process whose boto3 client counts every DynamoDB API call with a botocore event hook
   (``before-call.dynamodb``); per operation (register each of 3 participants, roll back until every participant
   is rolled back, status) the count and the calls by name. Target (issue 13 §4): a 3-participant rollback in
   at most 12 calls, with every write still conditional.
2. Throughput: 200 transactions at once (3 participants each: register, roll back, wait until rolled back)
   against two manager processes (``corrtrace txmanager serve``) sharing one table; transactions/s, median and
   p95 time per transaction, and exactly-once: every participant of every transaction rolled back exactly once
   (counted by the participants' callbacks). The named peer is the engine's own ceiling measured in the same
   run: conditional single-item writes per second through the same proxy, divided by the calls a transaction
   needs. ``--one-instance`` adds the same load against a single manager process. Also measured: the requests
   the engine got per transaction under that load (contention included), and the CPU per transaction of the
   managers, of moto and of this process (proxy, participants, clients), from ``/proc``: on a shared 2-core
   machine moto's ~15 ms of CPU per request is what bounds the rate, and the managers' CPU per transaction is
   what the capacity model (benchmarks/capacity.py) scales by.

moto applies conditional writes without a lock, so DynamoDB goes through the serialising proxy the tests use
(tests/txmanager/dynamoproxy.py), which gives DynamoDB's per-item atomicity back. Needs a moto server (MOTO_URL, else
MOTO_PORT, else http://127.0.0.1:5000). Run: ``python benchmarks/txmanager.py [--json] [--transactions N]``;
exit 1 when a target is missed or a participant was not rolled back exactly once. Prints ``step: {json}``
result lines (``calls``, ``load_2_managers``, ``report``) that benchmarks/run_all.py keeps in results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from corrtrace.txmanager import TxManagerClient, create_app, participant_router  # noqa: E402
from corrtrace.txmanager.settings import TxManagerSettings  # noqa: E402
from corrtrace.txmanager.store import Store  # noqa: E402

from corrtrace import new_correlation_id  # noqa: E402
from corrtrace.endpoints import backend_url  # noqa: E402
from tests.txmanager.dynamoproxy import SerializingProxy  # noqa: E402
from tests.txmanager.manager_process import start_manager  # noqa: E402

MOTO_URL = backend_url("MOTO")
SECRET = "bench-shared-secret-0123456789"
SERVICES = ("cart", "payment", "stock")
TARGET_ROLLBACK_CALLS = 12
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A uvicorn server in a thread on a loopback port."""

    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Participants:
    """Three participant services in one app (one router per prefix), counting every rollback that ran."""

    def __init__(self) -> None:
        from fastapi import FastAPI

        self.effects: Counter[tuple[str, str]] = Counter()
        self.finished: dict[str, threading.Event] = {}  # set when all three rolled back (no polling needed)
        self.lock = threading.Lock()
        app = FastAPI()
        for name in SERVICES:
            app.include_router(participant_router(SECRET, self._undo(name)), prefix=f"/{name}")
        self.server = Server(app)

    def _undo(self, name: str) -> Any:
        def undo(correlation_id: str, payload: dict[str, Any]) -> dict[str, str]:
            with self.lock:
                self.effects[(name, correlation_id)] += 1
                if all(self.effects[(other, correlation_id)] for other in SERVICES):
                    self.finished.setdefault(correlation_id, threading.Event()).set()
            return {"undone": name}

        return undo

    def wait(self, correlation_id: str, timeout: float) -> None:
        with self.lock:
            event = self.finished.setdefault(correlation_id, threading.Event())
        if not event.wait(timeout):
            raise SystemExit(f"transaction {correlation_id}: not every participant rolled back in {timeout} s")

    def register_all(self, client: TxManagerClient, correlation_id: str) -> None:
        for name in SERVICES:
            client.register(correlation_id, name, f"{self.server.url}/{name}/corrtrace/rollback/{{id}}")


def _settings(table: str, endpoint: str) -> TxManagerSettings:
    return TxManagerSettings(
        table_name=table,
        dynamodb_endpoint=endpoint,
        secret=SECRET,
        participant_timeout=10,
        poll_interval=0.05,
        resume_interval=0,
        backoff_initial=0.05,
    )


def _wait_rolled_back(store: Store, correlation_id: str, timeout: float = 60, poll: float = 0.02) -> float:
    deadline = time.time() + timeout
    while True:
        tx = store.get(correlation_id)
        if tx is not None and tx.state == "rolled_back":
            return time.time()
        if time.time() > deadline:
            raise SystemExit(f"transaction {correlation_id} not rolled back in {timeout} s: {tx}")
        time.sleep(poll)


def count_calls(endpoint: str, participants: Participants) -> dict[str, Any]:
    """DynamoDB calls made by one manager per operation of a 3-participant transaction."""
    table = f"bench-calls-{uuid.uuid4().hex[:8]}"
    settings = _settings(table, endpoint)
    store = Store(settings)
    store.create_table()
    calls: list[str] = []
    store.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    observer = Store(settings)  # the benchmark's own reads are not counted
    manager = Server(create_app(settings, store=store))
    results: dict[str, Any] = {}
    try:
        with TxManagerClient(manager.url, SECRET, timeout=30) as client:
            rounds: dict[str, list[Counter[str]]] = {}
            for _ in range(3):
                cid = new_correlation_id()
                for name in SERVICES:
                    before = len(calls)
                    client.register(cid, name, f"{participants.server.url}/{name}/corrtrace/rollback/{{id}}")
                    rounds.setdefault(f"register {name}", []).append(Counter(calls[before:]))
                before = len(calls)
                client.rollback(cid, reason="bench")
                _wait_rolled_back(observer, cid)
                time.sleep(0.2)  # let the fan-out task end: nothing may follow its last write
                rounds.setdefault("rollback (trigger + fan-out)", []).append(Counter(calls[before:]))
                before = len(calls)
                client.status(cid)
                rounds.setdefault("status", []).append(Counter(calls[before:]))
        for op, counters in rounds.items():
            totals = [sum(c.values()) for c in counters]
            results[op] = {"calls": statistics.median(totals), "by_api": dict(counters[-1])}
    finally:
        manager.stop()
        store.client.delete_table(TableName=table)
    return results


def _start_manager(settings: TxManagerSettings, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    os.environ.update({k: os.environ.get(k, v) for k, v in AWS_ENV.items()})
    env = {
        "table_name": settings.table_name,
        "dynamodb_endpoint": settings.dynamodb_endpoint or "",
        "secret": SECRET,
        "poll_interval": "0.05",
        "backoff_initial": "0.05",
        # an overloaded engine times calls out: a stopped pass resumes at a later sweep, parked calls soon after;
        # not much more often than the default: each sweep is 3 index queries per manager
        "resume_interval": "20",
        # 200 transactions queue their calls for a slow shared engine: a claim's settle can wait longer than the
        # default lease (participant_timeout + 5 s), and a lease lost to that queue makes another caller take the
        # call over (repeated work that only deepens the queue); the participants answer in milliseconds
        "lease_margin": "120",
        "slow_retry_initial": "5",
    }
    proc = start_manager(port, log, env, extra_args=("--log-level", "WARNING"), cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _moto_pid() -> int | None:
    """The moto server answering on MOTO_URL's port, when it runs on this machine (for its CPU time)."""
    port = str(httpx.URL(MOTO_URL).port or 80)
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"moto.server" in args and port.encode() in args:
            return int(proc.name)
    return None


def throughput(
    proxy: SerializingProxy, participants: Participants, instances: int, n: int, log: Path
) -> dict[str, Any]:
    """``n`` transactions at once against ``instances`` manager processes sharing one table."""
    table = f"bench-load-{uuid.uuid4().hex[:8]}"
    settings = _settings(table, proxy.url)
    store = Store(settings)
    store.create_table()
    own: list[str] = []  # the benchmark's own calls (table, final-state polls), not the managers'
    store.client.meta.events.register("before-call.dynamodb", lambda model, **_: own.append(model.name))
    managers = [_start_manager(settings, log) for _ in range(instances)]
    clients = [TxManagerClient(url, SECRET, timeout=600) for _, url in managers]
    ids = [new_correlation_id() for _ in range(n)]
    barrier = threading.Barrier(n)

    def one(i: int) -> float:
        client = clients[i % len(clients)]
        barrier.wait()
        started = time.time()
        participants.register_all(client, ids[i])
        client.rollback(ids[i], reason="bench")
        participants.wait(ids[i], timeout=600)
        return time.time() - started

    try:
        forwarded, own_before = sum(proxy.calls.values()), len(own)
        moto = _moto_pid()
        cpu = sum(_cpu_seconds(proc.pid) for proc, _ in managers)
        engine_cpu, own_cpu = _cpu_seconds(moto) if moto else 0.0, _cpu_seconds(os.getpid())
        start = time.time()
        with ThreadPoolExecutor(n) as pool:
            durations = list(pool.map(one, range(n)))
        deadline = time.time() + 600  # then each transaction's own last write (finish): done means rolled_back
        states = Counter(  # polled slowly: the benchmark's own reads must not compete with the managers' calls
            _wait_rolled_back(store, cid, timeout=deadline - time.time(), poll=0.5) and "rolled_back" for cid in ids
        )
        elapsed = time.time() - start
        cpu = sum(_cpu_seconds(proc.pid) for proc, _ in managers) - cpu
        engine_cpu = _cpu_seconds(moto) - engine_cpu if moto else float("nan")
        own_cpu = _cpu_seconds(os.getpid()) - own_cpu
        managers_calls = sum(proxy.calls.values()) - forwarded - (len(own) - own_before)
    finally:
        for client in clients:
            client.close()
        for proc, _ in managers:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        store.client.delete_table(TableName=table)
    counts = [participants.effects[(name, cid)] for cid in ids for name in SERVICES]
    durations.sort()
    return {
        "instances": instances,
        "transactions": n,
        "transactions_per_s": round(n / elapsed, 2),
        "seconds": round(elapsed, 1),
        # every request the engine got from the managers (contention and retries included), per transaction
        "calls_per_transaction_under_load": round(managers_calls / n, 1),
        "manager_cpu_ms_per_transaction": round(1000 * cpu / n, 1),
        # where the rest of the machine's CPU went: moto, and this process (proxy, participants, 200 clients)
        "moto_cpu_ms_per_transaction": round(1000 * engine_cpu / n, 1),
        "bench_cpu_ms_per_transaction": round(1000 * own_cpu / n, 1),
        "median_s": round(statistics.median(durations), 3),
        "p95_s": round(durations[int(0.95 * (n - 1))], 3),
        "rolled_back_exactly_once": sum(1 for c in counts if c == 1),
        "participants": len(counts),
        "not_exactly_once": sum(1 for c in counts if c != 1),
        "transactions_rolled_back": states["rolled_back"],
    }


def engine_ceiling(endpoint: str, seconds: float = 3.0) -> float:
    """Conditional writes per second the DynamoDB endpoint takes from 8 threads (the manager's own load shape)."""
    table = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    store = Store(_settings(table, endpoint))
    store.create_table()
    done = Counter[int]()
    stop = time.time() + seconds

    def writer(i: int) -> None:
        n = 0
        while time.time() < stop:
            store.remember_nonce(f"{i}-{n}", ttl=60)
            n += 1
        done[i] = n

    try:
        start = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(writer, range(8)))
        return sum(done.values()) / (time.time() - start)
    finally:
        store.client.delete_table(TableName=table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--transactions", type=int, default=200)
    parser.add_argument("--one-instance", action="store_true", help="also run the load against one manager")
    args = parser.parse_args(argv)
    os.environ.update({k: os.environ.get(k, v) for k, v in AWS_ENV.items()})
    try:
        httpx.get(MOTO_URL + "/moto-api/", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        print(
            f"txmanager benchmark: moto not reachable at {MOTO_URL} ({type(exc).__name__}); "
            "start it with scripts/services up moto",
            file=sys.stderr,
        )
        return 1
    proxy = SerializingProxy(MOTO_URL)
    participants = Participants()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"corrtrace-bench-txmanager-{os.getpid()}.log"
    try:
        calls = count_calls(proxy.url, participants)
        writes_per_s = engine_ceiling(proxy.url)
        runs = [throughput(proxy, participants, 2, args.transactions, log)]
        if args.one_instance:
            runs.append(throughput(proxy, participants, 1, args.transactions, log))
    finally:
        participants.server.stop()
        proxy.close()
    rollback_calls = calls["rollback (trigger + fan-out)"]["calls"]
    per_tx = sum(v["calls"] for v in calls.values())
    ok_calls = rollback_calls <= TARGET_ROLLBACK_CALLS
    exact = all(r["not_exactly_once"] == 0 and r["transactions_rolled_back"] == r["transactions"] for r in runs)
    ceiling = writes_per_s / per_tx
    report = {
        "dynamodb_calls": calls,
        "calls_per_transaction": per_tx,
        "rollback_calls_target": TARGET_ROLLBACK_CALLS,
        "engine_writes_per_s": round(writes_per_s, 1),
        "engine_ceiling_transactions_per_s": round(ceiling, 2),
        "runs": runs,
        "ratio_to_engine_ceiling": round(runs[0]["transactions_per_s"] / ceiling, 2),
        "transactions_per_s": runs[0]["transactions_per_s"],  # two managers against moto: the emulator's rate
        # what one manager core drives when the engine is not the limit: 1 / its CPU time per transaction
        "manager_transactions_per_s": round(1000 / max(runs[0]["manager_cpu_ms_per_transaction"], 0.1), 1),
        "exactly_once": exact,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("DynamoDB calls per operation (3 participants; median of 3 transactions):")
        for op, value in calls.items():
            apis = ", ".join(f"{k} {v}" for k, v in sorted(value["by_api"].items()))
            print(f"  {op:<30} {value['calls']:>4}   ({apis})")
        print(f"  {'whole transaction':<30} {per_tx:>4}")
        print(f"  rollback target <= {TARGET_ROLLBACK_CALLS}: {'met' if ok_calls else 'MISSED'}")
        print(f"\n{args.transactions} concurrent transactions (3 participants each), through the serialising proxy:")
        print(f"  {'managers':<10} {'tx/s':>8} {'median s':>9} {'p95 s':>8} {'exactly once':>14}")
        for row in runs:
            print(
                f"  {row['instances']:<10} {row['transactions_per_s']:>8} {row['median_s']:>9} {row['p95_s']:>8} "
                f"{row['rolled_back_exactly_once']:>6}/{row['participants']:<7}"
            )
        print(
            f"  peer: the engine's ceiling, {writes_per_s:.0f} conditional writes/s / {per_tx} calls = "
            f"{ceiling:.2f} tx/s; two managers reach {report['ratio_to_engine_ceiling']}x of it"
        )
        print(f"  every participant rolled back exactly once: {'yes' if exact else 'NO'}")
        row = runs[0]
        print(
            f"  under load: {row['calls_per_transaction_under_load']} engine calls per transaction (contention "
            f"included); CPU per transaction: managers {row['manager_cpu_ms_per_transaction']} ms "
            f"(= {report['manager_transactions_per_s']} tx/s per manager core), moto "
            f"{row['moto_cpu_ms_per_transaction']} ms, proxy + participants + clients "
            f"{row['bench_cpu_ms_per_transaction']} ms; load average {report['load_average']}"
        )
        # result lines for run_all.py / capacity.py
        print("calls: " + json.dumps({op: v["calls"] for op, v in calls.items()} | {"per_transaction": per_tx}))
        for row in runs:
            print(f"load_{row['instances']}_managers: " + json.dumps(row))
        print("report: " + json.dumps({k: v for k, v in report.items() if k not in ("dynamodb_calls", "runs")}))
    return 0 if ok_calls and exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
