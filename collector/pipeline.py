"""Sources -> parse and route -> bounded buffer -> every sink -> checkpoint.

Two threads: the reader turns lines into records (and hands each parsed event to the subscribers, e.g. the
alert engine), the shipper delivers each batch to every sink in order and only then commits the checkpoint.
When the sinks stall, batches queue in memory (a few), then in a bounded disk buffer; when that is full the
reader pauses and the tailed files themselves are the buffer. Memory stays bounded either way.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from corrtrace.collector.buffer import DiskBuffer
from corrtrace.collector.checkpoint import Checkpoint, StateError
from corrtrace.collector.parsers import LineFormat
from corrtrace.collector.record import Record, make_records
from corrtrace.collector.retry import Backoff, DeadLetters, Stopped
from corrtrace.collector.sinks.base import CallLimits, Sink
from corrtrace.collector.sources.base import RawLine, Source

from corrtrace.errors import InvalidInput

log = logging.getLogger("corrtrace.collector")
Subscriber = Callable[[dict[str, Any]], None]
# What a sink raises when it cannot encode one record (an int SQLite cannot hold, a date the platform cannot
# format: "[Errno 75] Value too large", bad text): that record is poison, not the sink broken.
_ENCODE_ERRORS = (ValueError, TypeError, OverflowError, sqlite3.InterfaceError, sqlite3.DataError)


def is_unencodable(exc: BaseException) -> bool:
    """True when ``exc`` says a record cannot be encoded (dead-letter it), not that the sink is unavailable."""
    if isinstance(exc, OSError):
        return exc.errno == errno.EOVERFLOW
    # a damaged state file or a setting the engine refuses is no fault of the record
    return isinstance(exc, _ENCODE_ERRORS) and not isinstance(exc, StateError | InvalidInput)


@dataclass
class Batch:
    records: list[Record]
    offsets: dict[str, int]  # source identity -> end offset of its last line in this batch

    def encode(self) -> bytes:
        return orjson.dumps({"r": [r.to_list() for r in self.records], "o": self.offsets})

    @classmethod
    def decode(cls, blob: bytes) -> Batch:
        data = orjson.loads(blob)
        return cls([Record.from_list(item) for item in data["r"]], data["o"])


def _tightest(declared: Sequence[CallLimits | None], batch_bytes: int, batch_events: int) -> CallLimits:
    """The sinks' smallest request (by bytes, then items); with none declared, the batch is one request."""
    limits = [c for c in declared if c is not None]
    if not limits:
        return CallLimits(batch_bytes, batch_events)
    return min(limits, key=lambda c: (c.max_bytes, c.max_items))


def _offsets(records: list[Record]) -> dict[str, int]:
    """Per source, the end offset of its last line in ``records`` (what the checkpoint may advance to)."""
    out: dict[str, int] = {}
    for r in records:
        out[r.source] = r.end
    return out


class BatchQueue:
    """A few batches in memory, the rest spilled to a bounded ``DiskBuffer``; FIFO throughout.

    Spilling is for an outage: a sink failing requests (``failing()``) or no batch taken for ``stall_seconds``.
    Otherwise a full memory queue (or a spill still draining after an outage) makes the reader wait, so a backlog
    shipped to a busy but working sink never pays for encoding, writing and decoding every batch once more.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        memory_batches: int = 2,
        max_disk_bytes: int = 256 << 20,
        stall_seconds: float = 5.0,
        failing: Callable[[], bool] | None = None,
    ):
        self.memory_batches = memory_batches
        self.stall_seconds = stall_seconds
        self.failing = failing
        self.disk = DiskBuffer(directory, memory_items=0, max_bytes=max_disk_bytes, policy="block")
        self._mem: collections.deque[Batch] = collections.deque()
        self._cond = threading.Condition()
        self._last_take = time.monotonic()
        self.disk_full = False

    def put(self, batch: Batch, stop: threading.Event) -> bool:
        """Queue ``batch``; blocks (the reader pauses) while the disk budget is used up or the disk is full."""
        blob = None
        while True:
            with self._cond:
                if not len(self.disk) and len(self._mem) < self.memory_batches:
                    self._mem.append(batch)
                    self._cond.notify_all()
                    self._disk_state(None)
                    return True
                if not self._stalled():  # after an outage too: spilling more would only delay the drain
                    self._cond.wait(0.1)  # the shipper is taking batches: wait for it
                    if stop.is_set():
                        return False
                    continue
            blob = blob if blob is not None else batch.encode()
            try:
                if not self._room_for(len(blob)):
                    raise OSError(errno.ENOSPC, "less free space than the reserve")
                ok = self.disk.put(blob, stop=stop)  # blocks while the disk budget is used up
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                self._disk_state(exc)
                with self._cond:
                    self._cond.wait(1.0)  # woken when the shipper takes a batch
                if stop.is_set():
                    return False
                continue
            self._disk_state(None)
            with self._cond:
                self._cond.notify_all()
            return ok

    def _stalled(self) -> bool:
        if self.failing is not None and self.failing():
            return True
        return time.monotonic() - self._last_take >= self.stall_seconds

    def _room_for(self, size: int) -> bool:
        """Spill only while the filesystem keeps a reserve (10% of it, at most 64 MiB) for the checkpoint, the
        dead letters and the embedded store: a buffer that fills the disk would starve what drains it."""
        try:
            st = os.statvfs(self.disk.dir)
        except OSError:
            return True
        reserve = min(64 << 20, st.f_blocks * st.f_frsize // 10)
        return st.f_bavail * st.f_frsize - size >= reserve

    def _disk_state(self, exc: OSError | None) -> None:
        """Log each change between 'spilling works' and 'the disk is full' once."""
        if exc is not None and not self.disk_full:
            self.disk_full = True
            log.warning(
                "buffer directory %s is full (%s): reading new lines is paused (the files are the "
                "buffer), shipping goes on",
                self.disk.dir,
                exc.strerror,
            )
        elif exc is None and self.disk_full:
            self.disk_full = False
            log.warning("buffer directory %s has room again: reading resumed", self.disk.dir)

    def get(self, timeout: float) -> Batch | None:
        with self._cond:
            if not self._mem and not len(self.disk):
                self._cond.wait(timeout)
            if self._mem:
                batch = self._mem.popleft()
                self._last_take = time.monotonic()
                self._cond.notify_all()
                return batch
        blob = self.disk.get()
        if blob is None:
            return None
        self._last_take = time.monotonic()
        return Batch.decode(blob)

    def __len__(self) -> int:
        return len(self._mem) + len(self.disk)


@dataclass
class PipelineStats:
    read: int = 0
    shipped: int = 0  # checkpointed: stored or dead-lettered by every sink
    dead_lettered: int = 0  # of those, lines at least one sink dead-lettered (counted once)
    batches: int = 0
    subscriber_errors: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def stored(self) -> int:
        return self.shipped - self.dead_lettered

    def rate(self) -> float:
        return self.shipped / max(1e-9, time.monotonic() - self.started)


class Pipeline:
    """Run ``sources`` into ``sinks``. ``once=True`` stops when every source is read to its end and shipped.

    ``batch_max_bytes`` counts bytes as the sink with the tightest ``call_limits`` does (CloudWatch: line + 26)
    and defaults to 2 x 1 MiB, so a backlog fills that sink's requests to their limit (2 calls of 1 MiB per
    batch for CloudWatch).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        sinks: Sequence[Sink],
        *,
        checkpoint: Checkpoint | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        subscribers: Sequence[Subscriber] = (),
        once: bool = False,
        batch_max_events: int = 20_000,
        batch_max_bytes: int = 2 << 20,
        flush_interval: float = 0.5,
        idle_sleep: float = 0.05,
        memory_batches: int = 1,
        buffer_max_bytes: int = 256 << 20,
        dead_letters: DeadLetters | None = None,
        workers: int = 1,
    ) -> None:
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="corrtrace-collector-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        self.sources = list(sources)
        self.sinks = sorted(sinks, key=lambda s: not s.idempotent)
        self.call_limits = _tightest([s.call_limits for s in self.sinks], batch_max_bytes, batch_max_events)
        self.checkpoint = checkpoint if checkpoint is not None else Checkpoint(self.data_dir / "checkpoint.json")
        self.subscribers = list(subscribers)
        found = [s.dead_letters for s in self.sinks if s.dead_letters is not None]
        self.dead_letters = dead_letters or next(
            (d for d in found if d.path is not None), DeadLetters(self.data_dir / "dead-letters.jsonl")
        )
        self._all_dead_letters = list({id(d): d for d in [self.dead_letters, *found]}.values())
        self.once = once
        self.workers = workers
        self.batch_max_events = batch_max_events
        self.batch_max_bytes = batch_max_bytes
        self.flush_interval = flush_interval
        self.idle_sleep = idle_sleep
        self.queue = BatchQueue(
            self.data_dir / "buffer",
            memory_batches=memory_batches,
            max_disk_bytes=buffer_max_bytes,
            failing=self._sinks_failing,
        )
        self._failures_seen = 0
        self.stats = PipelineStats()
        self.error: BaseException | None = None
        self._stop_reading = threading.Event()
        self._stop = threading.Event()
        self._reader_done = threading.Event()
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sub_warned = False

    def subscribe(self, fn: Subscriber) -> None:
        """Receive every parsed event dict (in the reader thread, before delivery): the alert engine's feed."""
        self.subscribers.append(fn)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> Pipeline:
        for target, name in ((self._read_loop, "corrtrace-reader"), (self._ship_loop, "corrtrace-shipper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a ``once`` run has shipped everything (True) or ``timeout`` passed (False)."""
        done = self._finished.wait(timeout)
        if self.error is not None:
            raise RuntimeError(f"collector pipeline failed: {self.error}") from self.error
        return done

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop reading, give the shipper ``drain_timeout`` to deliver what is queued, then stop it."""
        self._stop_reading.set()
        self._finished.wait(drain_timeout)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for source in self.sources:
            source.close()
        self.queue.disk.close()  # sinks belong to the caller, who closes them

    def run(self) -> PipelineStats:
        """Run a ``once`` pipeline to the end in the calling thread's lifetime."""
        self.start()
        try:
            self.wait()
        finally:
            self.stop(drain_timeout=0)
        return self.stats

    # -- reader ------------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # surfaced by wait()
            log.exception("collector reader failed")
            self.error = exc
            self._finished.set()
        finally:
            self._reader_done.set()

    def _read(self) -> None:
        records: list[Record] = []
        size = 0
        started = time.monotonic()
        while not self._stop_reading.is_set():
            got = 0
            for source in self.sources:
                room = self.batch_max_events - len(records)
                if room <= 0 or size >= self.batch_max_bytes:
                    break
                lines = source.read(room, self.batch_max_bytes - size, self.once)
                got += len(lines)
                size += self._add(lines, records, source.fmt)
            full = len(records) >= self.batch_max_events or size >= self.batch_max_bytes
            if records and (full or not got or time.monotonic() - started >= self.flush_interval):
                head, records, size = self._cut(records, size)
                if not self.queue.put(Batch(head, _offsets(head)), self._stop_reading):
                    return
                started = time.monotonic()
                continue
            if not got and not full:
                if self.once and all(s.at_eof() for s in self.sources):
                    return
                self._stop_reading.wait(self.idle_sleep)

    def _cut(self, records: list[Record], size: int) -> tuple[list[Record], list[Record], int]:
        """Split off a batch that packs into ``batch_max_bytes / call_limits.max_bytes`` whole sink requests
        (CloudWatch: 1 MiB of line + 26 bytes, at most 10,000 events per call) and ``batch_max_events``; the rest
        starts the next batch. Exact cuts let a backlog fill the requests to the binding limit."""
        limits = self.call_limits
        if size < self.batch_max_bytes - limits.max_bytes // 2 and len(records) < self.batch_max_events:
            return records, [], 0
        call_max = min(limits.max_bytes, self.batch_max_bytes)
        calls = max(1, self.batch_max_bytes // call_max)
        if calls == 1 and size <= call_max and len(records) <= min(limits.max_items, self.batch_max_events):
            return records, [], 0  # all of it is one request (Elasticsearch: no per-record walk)
        overhead = limits.item_overhead
        used, call_bytes, call_events, total, cut = 1, 0, 0, 0, len(records)
        for i, r in enumerate(records):
            item = len(r.raw) + overhead
            if call_bytes + item > call_max or call_events == limits.max_items:
                used, call_bytes, call_events = used + 1, 0, 0
            if used > calls or i >= self.batch_max_events:
                cut = max(i, 1)
                break
            call_bytes += item
            call_events += 1
            total += item
        return records[:cut], records[cut:], size - total if cut < len(records) else 0

    def _add(self, lines: list[RawLine], records: list[Record], fmt: LineFormat | None = None) -> int:
        subs = self.subscribers
        made, events = make_records(lines, int(time.time() * 1000), fmt, events=bool(subs))
        records += made
        size = sum([len(record.raw) for record in made]) + self.call_limits.item_overhead * len(made)
        for event in events:
            for fn in subs:
                try:
                    fn(event)
                except Exception:
                    self.stats.subscriber_errors += 1
                    if not self._sub_warned:
                        self._sub_warned = True
                        log.exception("a collector subscriber failed (logged once, counted after)")
        self.stats.read += len(lines)
        return size

    # -- shipper -----------------------------------------------------------------------------------------------
    def _sink_failures(self) -> int:
        return sum(s.stats.failures for s in self.sinks)

    def _sinks_failing(self) -> bool:
        """A sink failed a request since the last batch was committed: it is retrying (an outage), so the
        reader may spill to the disk buffer rather than wait."""
        return self._sink_failures() != self._failures_seen

    def in_flight(self) -> int:
        """How many batches may be delivered at once: ``workers``, capped by every sink's own ``max_in_flight``
        (1 for a sink that needs its batches in order, such as CloudWatch or the embedded store)."""
        return max(1, min([self.workers, *(s.max_in_flight for s in self.sinks)]))

    def _ship_loop(self) -> None:
        """Take batches in order, deliver up to ``in_flight()`` at once (reading and parsing go on meanwhile),
        and commit each batch's checkpoint only after it and every batch before it was delivered."""
        width = self.in_flight()
        pool = ThreadPoolExecutor(width, thread_name_prefix="corrtrace-sender") if width > 1 else None
        pending: collections.deque[tuple[Batch, Future[None]]] = collections.deque()
        try:
            while not self._stop.is_set():
                while pending and (pending[0][1].done() or len(pending) >= width):
                    pending[0][1].result()  # a delivery's error stops the shipper as it did in this thread
                    self._commit(pending.popleft()[0])
                batch = self.queue.get(timeout=0.01 if pending else 0.2)
                if batch is None:
                    if pending:
                        continue
                    self.checkpoint.flush()  # a write the full disk refused is retried while idle
                    if self._reader_done.is_set() and not len(self.queue):
                        break
                    continue
                self._note_sources()
                if pool is None:
                    self._deliver_until_written(batch)
                    self._commit(batch)
                else:
                    pending.append((batch, pool.submit(self._deliver_until_written, batch)))
        except Stopped:
            pass
        except StateError as exc:  # a damaged state file: the message says what to do, a traceback would not
            log.error("collector shipper stopped: %s", exc)
            self.error = exc
        except InvalidInput as exc:  # a setting the engine refuses: `corrtrace collect` prints it, in one line
            self.error = exc
        except BaseException as exc:
            log.exception("collector shipper failed")
            self.error = exc
        finally:
            if pool is not None:
                self._stop.set()  # deliveries still in flight end at their next wait (Stopped)
                pool.shutdown(wait=True, cancel_futures=True)
                self._commit_finished(pending)
            self._finished.set()

    def _commit_finished(self, pending: collections.deque[tuple[Batch, Future[None]]]) -> None:
        """On the way out: commit the delivered head of ``pending`` (in order, up to the first that was not:
        the checkpoint never passes a batch that was not delivered)."""
        while pending:
            batch, future = pending.popleft()
            if future.cancelled() or future.exception() is not None:
                return
            self._commit(batch)

    def _deliver_until_written(self, batch: Batch) -> None:
        """Deliver ``batch`` to every sink; a full disk (a dead letter, a journal line that cannot be written)
        pauses and retries the whole batch, which the sinks' ids (and CloudWatch's landed journal) make safe."""
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                for sink in self.sinks:
                    self._deliver(sink, batch.records)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if not backoff.attempt:
                    log.warning(
                        "cannot write in %s (%s): shipping is paused and retried until there is room",
                        self.data_dir,
                        exc.strerror,
                    )
                backoff.wait(self._stop)
                continue
            if backoff.attempt:
                log.warning("%s has room again: shipping resumed", self.data_dir)
            return

    def _note_sources(self) -> None:
        """Tell the dead-letter files which path each source identity is (in the shipper thread, before the
        batch is handed to a sender)."""
        paths: dict[str, str] = {}
        for source in self.sources:
            paths.update(source.paths())
        for dead in self._all_dead_letters:
            dead.sources.update(paths)

    def _commit(self, batch: Batch) -> None:
        """The batch is delivered to every sink: advance the checkpoint past it."""
        paths: dict[str, str] = {}
        where: dict[str, tuple[int, int]] = {}
        unresumable: set[str] = set()
        for source in self.sources:
            paths.update(source.paths())
            where.update(source.identities())
            unresumable |= source.unresumable()
        updates = {src: (end, paths.get(src, "")) for src, end in batch.offsets.items() if src not in unresumable}
        self.checkpoint.commit(updates, where)
        self._failures_seen = self._sink_failures()
        for sink in self.sinks:
            sink.committed(batch.offsets)
        self.stats.shipped += len(batch.records)
        self.stats.dead_lettered += len(set().union(*(d.take_ids() for d in self._all_dead_letters)))
        self.stats.batches += 1

    def _deliver(self, sink: Sink, records: Sequence[Record]) -> None:
        """Deliver to one sink; a record it cannot encode is found by halving and dead-lettered (poison)."""
        try:
            sink.deliver(records, self._stop)
        except Exception as exc:
            if not is_unencodable(exc):
                raise
            if len(records) > 1:
                half = len(records) // 2
                self._deliver(sink, records[:half])
                self._deliver(sink, records[half:])
                return
            record = records[0]
            self.dead_letters.add(sink.name, f"cannot encode: {type(exc).__name__}: {exc}", record.raw, record.doc_id)
            sink.stats.dead_lettered += 1

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
