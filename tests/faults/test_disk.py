"""Issue 10 §2: a full disk pauses reading and recovers by itself; the checkpoint write stays atomic; an
embedded store locked by another process is waited out with backoff."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from corrtrace.collector import Backoff, EmbeddedStore, Record
from corrtrace.collector.checkpoint import Checkpoint

from tests.collector.esutil import exactly_once, stored
from tests.collector.faultproxy import FaultProxy
from tests.collector.helpers import write_lines

TOTAL = 30_000


def _fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_full_data_dir_pauses_reading_and_recovers_when_the_sink_is_back(
    small_disk: Path, tmp_path: Path, es: Any, es_url: str, index_prefix: str
) -> None:
    """The issue's reproduction: a 3 MB data_dir, the sink down, 30,000 lines, then the sink back."""
    log = tmp_path / "app.log"
    write_lines(log, range(TOTAL))
    out = tmp_path / "collector.err"
    with FaultProxy(es_url) as proxy, open(out, "wb") as err:
        proxy.down = True
        config = tmp_path / "collector.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "collector": {
                        "paths": [str(log)],
                        "data_dir": str(small_disk),
                        "sinks": ["elasticsearch"],
                        "es_url": proxy.url,
                        "index_prefix": index_prefix,
                        "batch_max_events": 1000,
                        "backoff_initial": 0.05,
                        "backoff_max": 0.3,
                    }
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "corrtrace.cli", "collect", "--once", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + 60
        while b"is full" not in out.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, out.read_text()[-3000:]  # paused, not dead
        assert b"is full" in out.read_bytes(), out.read_text()[-3000:]
        proxy.down = False
        assert proc.wait(timeout=120) == 0, out.read_text()[-3000:]
    text = out.read_text()
    assert "Traceback" not in text
    changes = [("full" if "is full" in x else "room") for x in text.splitlines() if "buffer directory" in x]
    assert changes and changes == ["full", "room"] * (len(changes) // 2)  # one line per change of state
    assert f"{TOTAL:,} lines read, {TOTAL:,} stored, 0 dead-lettered" in text
    exactly_once(stored(es, index_prefix), TOTAL)
    assert orjson.loads((small_disk / "checkpoint.json").read_bytes())["sources"]
    assert not (small_disk / "checkpoint.json.tmp").exists()


def test_checkpoint_write_on_a_full_disk_keeps_the_old_copy_and_retries(small_disk: Path) -> None:
    checkpoint = Checkpoint(small_disk / "checkpoint.json")
    checkpoint.commit({"a": (100, "/x/app.log")})
    before = (small_disk / "checkpoint.json").read_bytes()
    filler = _fill(small_disk)
    checkpoint.commit({"a": (200, "/x/app.log")})  # does not raise: the shipper goes on
    assert checkpoint.write_failing and checkpoint.offset("a") == 200
    assert (small_disk / "checkpoint.json").read_bytes() == before  # never an empty or partial file
    assert not (small_disk / "checkpoint.json.tmp").exists()
    filler.unlink()
    assert checkpoint.flush() and not checkpoint.write_failing
    assert Checkpoint(small_disk / "checkpoint.json").offset("a") == 200


_HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
open(sys.argv[3], "w").close()
db.execute("COMMIT")
"""


def test_a_store_locked_by_another_process_is_waited_out(tmp_path: Path) -> None:
    """Longer than the busy timeout (30 s in production, 0.2 s here): retried with backoff, then delivered."""
    store = EmbeddedStore(tmp_path / "store", busy_timeout=0.2, backoff=Backoff(0.05, 0.3))
    released = tmp_path / "releasing"  # written just before the lock goes
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(store.path), "2.0", str(released)], stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    raw = [orjson.dumps({"correlation_id": f"l-{i}"}) for i in range(3)]
    store.deliver([Record("src", i, i + 1, r, 1_700_000_000_000, f"l-{i}", None, None) for i, r in enumerate(raw)])
    assert released.exists()  # it waited for the lock ...
    assert store.count() == 3 and store.stats.failures >= 1  # ... retrying, and then stored everything
    holder.wait(timeout=10)
    store.close()
    assert os.path.exists(store.path)


def test_a_dead_letter_on_a_full_disk_waits_for_room(
    small_disk: Path, tmp_path: Path, es_url: str, index_prefix: str
) -> None:
    """A refused line whose dead letter cannot be written is neither stored nor dead-lettered: shipping
    pauses (it is not acknowledged, nor skipped) and goes on by itself once there is room."""
    log = tmp_path / "app.log"
    log.write_bytes(
        b'{"correlation_id":"f-0","labels":{"seq":0}}\n'
        b'{"correlation_id":"f-1","http":{"response":{"status_code":"refused"}},"labels":{"seq":1}}\n'
    )
    out = tmp_path / "collector.err"
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "paths": [str(log)],
                    "data_dir": str(small_disk),
                    "sinks": ["elasticsearch"],
                    "es_url": es_url,
                    "index_prefix": index_prefix,
                }
            }
        )
    )
    (small_disk / "dead-letters.jsonl").touch()
    filler = _fill(small_disk)
    with open(out, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corrtrace.cli", "collect", "--once", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + 60
        while b"shipping is paused" not in out.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, out.read_text()[-3000:]
        filler.unlink()
        assert proc.wait(timeout=60) == 0, out.read_text()[-3000:]
    text = out.read_text()
    assert "2 lines read, 1 stored, 1 dead-lettered" in text and "room again" in text
    (entry,) = [orjson.loads(x) for x in (small_disk / "dead-letters.jsonl").read_bytes().splitlines()]
    assert entry["offset"] > 0 and "refused" in entry["line"]
