"""The bounded disk buffer and the in-process logging handler (never blocks, never drops silently)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from corrtrace.collector import EmbeddedStore, ShippingHandler, search_events
from corrtrace.collector.buffer import DiskBuffer
from corrtrace.collector.record import Record

from corrtrace import bind_correlation_id


def test_disk_buffer_is_fifo_across_memory_and_disk(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, memory_items=3, max_bytes=1 << 20, segment_bytes=100)
    for i in range(50):
        assert buf.put(f"item-{i}".encode())
    assert buf.disk_bytes > 0 and len(buf) == 50
    out = []
    while (blob := buf.get()) is not None:
        out.append(blob.decode())
        if len(out) == 20:
            for i in range(50, 60):
                buf.put(f"item-{i}".encode())
    assert out == [f"item-{i}" for i in range(60)]
    assert buf.disk_bytes == 0 and not list(tmp_path.glob("*.seg"))


def test_block_policy_waits_for_room_and_stops_on_request(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, memory_items=0, max_bytes=1000, policy="block")
    for _ in range(9):
        assert buf.put(b"x" * 100)
    stop = threading.Event()
    assert not buf.put(b"x" * 100, timeout=0.1)  # full: the producer pauses
    threading.Timer(0.1, stop.set).start()
    assert not buf.put(b"x" * 100, stop=stop)
    assert buf.get() is not None
    assert buf.put(b"x" * 100, timeout=0.1)
    assert buf.peak_disk_bytes <= 1000


def test_drop_oldest_policy_counts_what_it_drops(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, memory_items=0, max_bytes=2000, segment_bytes=500, policy="drop_oldest")
    for i in range(100):
        buf.put(b"%03d" % i + b"y" * 97)
    kept = []
    while (blob := buf.get()) is not None:
        kept.append(int(blob[:3]))
    assert buf.dropped + len(kept) == 100 and buf.dropped > 0
    assert kept == list(range(100 - len(kept), 100))  # the newest survive, in order


class _SlowSink:
    """A sink that is down until ``up`` is set: the handler must spill, not block."""

    name = "slow"
    idempotent = True

    def __init__(self, store: EmbeddedStore) -> None:
        from corrtrace.collector.sinks.base import SinkStats

        self.store = store
        self.up = threading.Event()
        self.stats = SinkStats()

    def deliver(self, records: list[Record], stop: threading.Event | None = None) -> None:
        from corrtrace.collector.retry import Stopped

        while not self.up.wait(0.05):
            if stop is not None and stop.is_set():
                raise Stopped()
        self.store.deliver(records)

    def close(self) -> None:
        pass


def test_handler_never_blocks_spills_to_disk_and_delivers_everything(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    sink = _SlowSink(store)
    handler = ShippingHandler([sink], service="api", queue_size=100, spill_dir=tmp_path / "spill", batch_size=500)
    logger = logging.getLogger("test.handler")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        with bind_correlation_id("req-handler-1"):
            for i in range(3000):
                logger.info("event %d", i, extra={"labels.seq": i})
        elapsed = time.perf_counter() - started
        assert elapsed < 5  # the sink is down the whole time: emit never waited for it
        assert handler.buffer.disk_bytes > 0  # the memory queue overflowed to disk
        sink.up.set()
        assert handler.flush(timeout=20)
    finally:
        logger.removeHandler(handler)
        handler.close()
    events = search_events("req-handler-1", backend=store)
    assert [e["labels"]["seq"] for e in events] == list(range(3000))
    assert handler.dropped == 0
    assert events[0]["service"]["name"] == "api"


def test_handler_drops_oldest_only_when_disk_budget_is_gone_and_says_so(tmp_path: Path, capsys) -> None:
    store = EmbeddedStore(tmp_path / "store")
    sink = _SlowSink(store)
    # batch_size=10: the shipping thread holds at most 10 lines while the sink is down. With the default 2,000 it
    # could take every line into its batch as fast as they were logged, and nothing would ever need dropping.
    handler = ShippingHandler([sink], queue_size=10, spill_dir=tmp_path / "spill", disk_budget=20_000, batch_size=10)
    logger = logging.getLogger("test.handler.drop")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(2000):
            logger.warning("event %d", i)
        assert handler.dropped > 0
        assert "dropped" in capsys.readouterr().err
        sink.up.set()
        assert handler.flush(timeout=20)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert store.count() + handler.dropped == 2000  # only the counted drops are missing
