"""Shipping faults at scale (issue 10 §7): one table of events written, stored, dead-lettered, lost and
duplicated per fault, each run against the real collector process and real sinks.

    python benchmarks/faults.py [--quick] [only ...]

Faults: SIGKILL x10 during rename and during copytruncate rotation (``paths`` naming only the live file), an
Elasticsearch outage, a full 3 MB data directory (tmpfs, needs root) with the sink down, poison lines, the
embedded store locked by another process past its 30 s busy timeout, and truncation without a copy, the one
documented way to lose lines (its "lost" must equal the lines unread at each truncation). Needs the
Elasticsearch node (ES_URL, else ES_PORT, else http://127.0.0.1:9200). Exit 1 when any other row loses or duplicates.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corrtrace.endpoints import backend_url  # noqa: E402
from tests.collector.faultproxy import FaultProxy  # noqa: E402  (a proxy in front of the real node)

ES_URL = backend_url("ES")
_SEQ = re.compile(rb'seq[=":]+(\d+)')


@dataclass
class Row:
    fault: str
    written: int
    stored: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    note: str = ""
    loss_allowed: int = 0  # truncation without a copy: the lines unread at each truncation


def line(seq: int, pad: int = 120) -> bytes:
    doc = {
        "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z",
        "message": "order handled " + "x" * pad,
        "correlation_id": f"req-{seq % 1000}",
        "log": {"level": "INFO"},
        "service": {"name": "orders", "environment": "bench"},
        "host": {"name": "node-1"},
        "labels": {"seq": seq},
    }
    return orjson.dumps(doc) + b"\n"


def seqs_in(blobs: list[bytes]) -> Counter[int]:
    """``labels.seq`` of each stored document (a wrapped plain-text line carries ``seq=N`` in its text)."""
    out: Counter[int] = Counter()
    for blob in blobs:
        match = _SEQ.search(blob)
        if match:
            out[int(match.group(1))] += 1
    return out


def embedded_seqs(data_dir: Path) -> Counter[int]:
    db = sqlite3.connect(data_dir / "store" / "events.sqlite3", timeout=60)
    try:
        return seqs_in([doc.encode() for (doc,) in db.execute("SELECT doc FROM events")])
    finally:
        db.close()


def es_seqs(prefix: str) -> Counter[int]:
    from elasticsearch import Elasticsearch
    from elasticsearch.helpers import scan

    es = Elasticsearch(ES_URL, request_timeout=120)
    es.indices.refresh(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    docs = [
        orjson.dumps(hit["_source"])
        for hit in scan(es, index=f"{prefix}-*", size=5000, query={"query": {"match_all": {}}})
    ]
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es.options(ignore_status=404).indices.delete_index_template(name=prefix)
    es.close()
    return seqs_in(docs)


def dead_seqs(data_dir: Path) -> Counter[int]:
    path = data_dir / "dead-letters.jsonl"
    if not path.exists():
        return Counter()
    return seqs_in(
        [orjson.loads(x).get("line", orjson.loads(x)["event"]).encode() for x in path.read_bytes().splitlines()]
    )


def score(row: Row, stored: Counter[int], dead: Counter[int], written: set[int]) -> Row:
    row.stored = len(set(stored) & written)
    row.dead_lettered = len((set(dead) - set(stored)) & written)
    row.lost = len(written - set(stored) - set(dead))
    row.duplicated = sum(c - 1 for c in stored.values() if c > 1)
    return row


class Collector:
    """``corrtrace collect`` as a real process with a config file; restartable, killable."""

    def __init__(self, tmp: Path, settings: dict[str, Any], once: bool = False) -> None:
        self.config = tmp / f"collector-{uuid.uuid4().hex[:6]}.yaml"
        self.config.write_text(yaml.safe_dump({"collector": settings}))
        self.log = open(tmp / "collector.log", "ab")  # noqa: SIM115
        self.once = once
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Collector:
        args = [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            args + (["--once"] if self.once else []), stdout=self.log, stderr=self.log, cwd=ROOT
        )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None and not self.once:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code


def wait_for(count: Callable[[], int], target: int, stall: float = 60.0) -> None:
    """Until ``count()`` reaches ``target`` or stops moving for ``stall`` seconds."""
    last, since = -1, time.monotonic()
    while True:
        try:
            now = count()
        except sqlite3.Error:
            now = last
        if now >= target:
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall:
            return
        time.sleep(0.5)


def store_count(data_dir: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{data_dir / 'store' / 'events.sqlite3'}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return 0
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


# -- faults -------------------------------------------------------------------------------------------------------
def sigkill_rotation(tmp: Path, total: int, rotate: str, seed: int) -> Row:
    """A writer appends ``total`` lines at a steady rate and rotates 10 times; the collector, told only the live
    file, is SIGKILLed 10 times at random moments and restarted at once."""
    rng = random.Random(seed)
    logs = tmp / "logs"
    logs.mkdir()
    live = logs / "app.log"
    live.touch()
    data = tmp / "data"
    collector = Collector(
        tmp, {"paths": [str(live)], "data_dir": str(data), "flush_interval": 0.2, "batch_max_events": 2000}
    )
    every = total // 10
    duration = 25.0
    done = threading.Event()

    def writer() -> None:
        fh = open(live, "ab")  # noqa: SIM115
        started = time.monotonic()
        for seq in range(total):
            fh.write(line(seq))
            if seq % 200 == 199:
                fh.flush()
                time.sleep(max(0.0, started + duration * seq / total - time.monotonic()))
            if seq % every == every - 1 and seq < total - 1:
                fh.flush()
                generation = seq // every + 1
                if rotate == "rename":
                    fh.close()
                    os.rename(live, logs / f"app.log.{generation}")
                    fh = open(live, "ab")  # noqa: SIM115
                else:
                    shutil.copyfile(live, logs / f"app.log.{generation}")
                    fh.truncate(0)
                    fh.seek(0)
        fh.close()
        done.set()

    t = time.perf_counter()
    collector.start()
    deadline = time.monotonic() + 60  # killed only once it watches the file: lines rotated away before the
    while not (data / "checkpoint.json").exists() and time.monotonic() < deadline:  # first start are not its
        time.sleep(0.1)
    thread = threading.Thread(target=writer)
    thread.start()
    for at in sorted(rng.uniform(1.0, duration) for _ in range(10)):
        time.sleep(max(0.0, at - (time.perf_counter() - t)))
        collector.kill()
        collector.start()
    thread.join()
    wait_for(lambda: store_count(data), total)
    collector.stop()
    row = Row(f"SIGKILL x10, {rotate} rotation", total, seconds=time.perf_counter() - t)
    return score(row, embedded_seqs(data), dead_seqs(data), set(range(total)))


def sink_outage(tmp: Path, total: int) -> Row:
    """Elasticsearch unreachable for 10 s while the collector ships a file that is still growing."""
    log = tmp / "app.log"
    data = tmp / "data"
    prefix = f"bench-faults-{uuid.uuid4().hex[:6]}"
    with FaultProxy(ES_URL) as proxy:
        collector = Collector(
            tmp,
            {
                "paths": [str(log)],
                "data_dir": str(data),
                "sinks": ["elasticsearch"],
                "es_url": proxy.url,
                "index_prefix": prefix,
                "backoff_initial": 0.1,
                "backoff_max": 2.0,
            },
        )
        t = time.perf_counter()
        with open(log, "wb") as fh:
            fh.write(b"".join(line(i) for i in range(total // 2)))
        collector.start()
        time.sleep(3)
        proxy.down = True
        with open(log, "ab") as fh:
            fh.write(b"".join(line(i) for i in range(total // 2, total)))
        time.sleep(10)
        proxy.down = False
        ckpt = data / "checkpoint.json"
        size = log.stat().st_size
        wait_for(lambda: _checkpointed(ckpt), size)
        collector.stop()
    row = Row("Elasticsearch down 10 s", total, seconds=time.perf_counter() - t)
    return score(row, es_seqs(prefix), dead_seqs(data), set(range(total)))


def _checkpointed(path: Path) -> int:
    try:
        sources = orjson.loads(path.read_bytes())["sources"]
    except (OSError, ValueError, KeyError):
        return 0
    return max((int(v["offset"]) for v in sources.values()), default=0)


def full_disk(tmp: Path, total: int) -> Row:
    """The issue's reproduction: data_dir on a 3 MB tmpfs, Elasticsearch down, ``total`` lines, then back."""
    mount = tmp / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    log = tmp / "app.log"
    log.write_bytes(b"".join(line(i) for i in range(total)))
    prefix = f"bench-faults-{uuid.uuid4().hex[:6]}"
    try:
        with FaultProxy(ES_URL) as proxy:
            proxy.down = True
            collector = Collector(
                tmp,
                {
                    "paths": [str(log)],
                    "data_dir": str(mount),
                    "sinks": ["elasticsearch"],
                    "es_url": proxy.url,
                    "index_prefix": prefix,
                    "batch_max_events": 1000,
                    "backoff_initial": 0.1,
                    "backoff_max": 1.0,
                },
                once=True,
            )
            t = time.perf_counter()
            collector.start()
            deadline = time.monotonic() + 60
            while b"is full" not in (tmp / "collector.log").read_bytes() and time.monotonic() < deadline:
                time.sleep(0.2)
            proxy.down = False
            code = collector.stop(timeout=600)
        dead = dead_seqs(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    row = Row("data_dir full (3 MB tmpfs), sink down", total, seconds=time.perf_counter() - t, note=f"exit {code}")
    return score(row, es_seqs(prefix), dead, set(range(total)))


def poison(tmp: Path, total: int) -> Row:
    """1 line in 50 is hostile: unreadable timestamps (1e20, -1e19, 1.5e300, NaN, garbage), a lone surrogate,
    plain text, or a field Elasticsearch refuses (mapping conflict: dead-lettered with its reason)."""
    log = tmp / "app.log"
    bad = [
        b'{"@timestamp":1e20,"labels":{"seq":%d}}',
        b'{"@timestamp":-1e19,"labels":{"seq":%d}}',
        b'{"@timestamp":1.5e300,"labels":{"seq":%d}}',
        b'{"@timestamp":NaN,"labels":{"seq":%d}}',
        b'{"@timestamp":"yesterday","labels":{"seq":%d}}',
        b'{"message":"\\ud800","labels":{"seq":%d}}',
        b"plain text seq=%d",
        b'{"http":{"response":{"status_code":"oops"}},"labels":{"seq":%d}}',
    ]
    with open(log, "wb") as fh:
        for i in range(total):
            fh.write(bad[(i // 50) % len(bad)] % i + b"\n" if i % 50 == 25 else line(i))
    data = tmp / "data"
    prefix = f"bench-faults-{uuid.uuid4().hex[:6]}"
    collector = Collector(
        tmp,
        {
            "paths": [str(log)],
            "data_dir": str(data),
            "sinks": ["elasticsearch"],
            "es_url": ES_URL,
            "index_prefix": prefix,
        },
        once=True,
    )
    t = time.perf_counter()
    code = collector.start().stop(timeout=600)
    row = Row("poison lines (1 in 50)", total, seconds=time.perf_counter() - t, note=f"exit {code}")
    return score(row, es_seqs(prefix), dead_seqs(data), set(range(total)))


_HOLD = (
    "import sqlite3, sys, time\n"
    "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(float(sys.argv[2]))\n"
    "db.execute('COMMIT')\n"
)


def locked_store(tmp: Path, total: int, hold: float) -> Row:
    """Another process holds the embedded store's write lock for ``hold`` s (past the 30 s busy timeout)."""
    log = tmp / "app.log"
    data = tmp / "data"
    log.write_bytes(b"".join(line(i) for i in range(total // 2)))
    collector = Collector(tmp, {"paths": [str(log)], "data_dir": str(data), "backoff_max": 2.0})
    t = time.perf_counter()
    collector.start()
    wait_for(lambda: store_count(data), total // 2)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(data / "store" / "events.sqlite3"), str(hold)], stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    with open(log, "ab") as fh:
        fh.write(b"".join(line(i) for i in range(total // 2, total)))
    holder.wait()
    wait_for(lambda: store_count(data), total)
    alive = collector.proc is not None and collector.proc.poll() is None
    collector.stop()
    row = Row(
        f"embedded store locked {hold:.0f} s",
        total,
        seconds=time.perf_counter() - t,
        note="collector stayed up" if alive else "COLLECTOR EXITED",
    )
    return score(row, embedded_seqs(data), dead_seqs(data), set(range(total)))


def truncate_no_copy(tmp: Path, rounds: int, per_round: int) -> Row:
    """The documented loss: while the collector is down, lines are appended and the file is emptied in place
    (``> app.log``) before it returns. Exactly those unread lines are gone; nothing else may be."""
    log = tmp / "app.log"
    data = tmp / "data"
    collector = Collector(tmp, {"paths": [str(log)], "data_dir": str(data)}, once=True)
    unread = 0
    seq = 0
    t = time.perf_counter()
    for _ in range(rounds):
        with open(log, "ab") as fh:
            fh.write(b"".join(line(i) for i in range(seq, seq + per_round)))
        seq += per_round
        collector.start().proc.wait()  # type: ignore[union-attr]
        lost_now = per_round // 10
        with open(log, "ab") as fh:  # written while the collector is down ...
            fh.write(b"".join(line(i) for i in range(seq, seq + lost_now)))
        seq += lost_now
        unread += lost_now
        with open(log, "r+b") as fh:  # ... and emptied before it comes back
            fh.truncate(0)
    collector.log.close()
    row = Row(
        "truncate, no copy (documented loss)",
        seq,
        seconds=time.perf_counter() - t,
        loss_allowed=unread,
        note=f"lost = the {unread:,} lines unread at the {rounds} truncations",
    )
    return score(row, embedded_seqs(data), dead_seqs(data), set(range(seq)))


# -- table --------------------------------------------------------------------------------------------------------
def table(rows: list[Row]) -> str:
    head = f"{'fault':<40}{'written':>9}{'stored':>9}{'dead-lettered':>15}{'lost':>7}{'duplicated':>12}{'s':>6}"
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(
            f"{r.fault:<40}{r.written:>9,}{r.stored:>9,}{r.dead_lettered:>15,}{r.lost:>7,}"
            f"{r.duplicated:>12,}{r.seconds:>6.0f}  {r.note}"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes and a shorter lock (a smoke run)")
    parser.add_argument(
        "only",
        nargs="*",
        help="run only the faults whose key is given: "
        + ", ".join(["rename", "copytruncate", "outage", "disk", "poison", "locked", "truncate"]),
    )
    args = parser.parse_args()
    q = args.quick
    seed = int(os.environ.get("CORRTRACE_FAULTS_SEED", "0")) or random.randrange(1 << 30)
    steps: dict[str, Callable[[Path], Row]] = {
        "rename": lambda tmp: sigkill_rotation(tmp, 20_000 if q else 60_000, "rename", seed),
        "copytruncate": lambda tmp: sigkill_rotation(tmp, 20_000 if q else 60_000, "copytruncate", seed + 1),
        "outage": lambda tmp: sink_outage(tmp, 20_000 if q else 60_000),
        "disk": lambda tmp: full_disk(tmp, 30_000),
        "poison": lambda tmp: poison(tmp, 20_000 if q else 60_000),
        "locked": lambda tmp: locked_store(tmp, 10_000 if q else 30_000, 5.0 if q else 35.0),
        "truncate": lambda tmp: truncate_no_copy(tmp, 10, 1_000),
    }
    rows = []
    print(f"seed {seed} (CORRTRACE_FAULTS_SEED to repeat)", flush=True)
    for key, step in steps.items():
        if args.only and key not in args.only:
            continue
        tmpdir = tempfile.mkdtemp(prefix=f"corrtrace-faults-{key}-")
        try:
            rows.append(step(Path(tmpdir)))
        finally:
            if not os.environ.get("CORRTRACE_FAULTS_KEEP"):
                shutil.rmtree(tmpdir, ignore_errors=True)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    bad = [r.fault for r in rows if r.lost != r.loss_allowed or r.duplicated]
    if bad:
        print(f"\nFAILED: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
