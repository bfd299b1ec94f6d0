"""An in-process ``logging.Handler`` that ships to the sinks from a background thread.

The request path never waits on the network: ``emit`` formats the line and appends it to a bounded memory
queue; when that is full, lines spill to a disk buffer; only when the disk budget is used up are the oldest
lines dropped, and every drop is counted and reported on stderr (never a silent drop, unlike watchtower).
Lines still spilled at exit stay on disk and are shipped by the next handler that uses the same directory.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence

from corrtrace.collector.buffer import DiskBuffer
from corrtrace.collector.record import Record, make_record
from corrtrace.collector.retry import Stopped
from corrtrace.collector.sinks.base import Sink

from corrtrace.logging import CorrelationFilter, JsonFormatter


class ShippingHandler(logging.Handler):
    """``logging.getLogger().addHandler(ShippingHandler([EmbeddedStore(dir)], service="api"))``."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        service: str | None = None,
        level: int = logging.NOTSET,
        queue_size: int = 10_000,
        spill_dir: str | os.PathLike[str] | None = None,
        disk_budget: int = 64 << 20,
        batch_size: int = 2_000,
        flush_interval: float = 0.2,
    ) -> None:
        super().__init__(level)
        self.sinks = sorted(sinks, key=lambda s: not s.idempotent)
        self.setFormatter(JsonFormatter(service))
        self.addFilter(CorrelationFilter())
        self._tmp = None
        if spill_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="corrtrace-handler-")
            spill_dir = self._tmp.name
        self.buffer = DiskBuffer(
            spill_dir, memory_items=queue_size, max_bytes=disk_budget, policy="drop_oldest", resume=True
        )
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.identity = f"h{uuid.uuid4().hex[:15]}"
        self.shipped = 0
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._reported_drops = 0
        self._last_report = 0.0
        self._thread = threading.Thread(target=self._run, name="corrtrace-log-shipper", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self.buffer.dropped

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode()
            with self._seq_lock:
                self._seq += 1
                seq = self._seq
            self._idle.clear()
            self.buffer.put(b"%s-%d\x00%s" % (self.identity.encode(), seq, line))
            if self.buffer.dropped != self._reported_drops:
                self._report_drops()
        except Exception:
            self.handleError(record)

    def _report_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_report >= 10.0:
            self._last_report = now
            new = self.buffer.dropped - self._reported_drops
            self._reported_drops = self.buffer.dropped
            sys.stderr.write(
                f"corrtrace: log disk budget used up; dropped the {new} oldest lines ({self.buffer.dropped} in total)\n"
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            batch: list[Record] = []
            blob = self.buffer.get(timeout=self.flush_interval)
            while blob is not None:
                doc_id, _, line = blob.partition(b"\x00")
                source, _, seq = doc_id.decode().rpartition("-")
                record, _ = make_record(source, int(seq), int(seq) + 1, line, doc_id=doc_id.decode())
                batch.append(record)
                if len(batch) >= self.batch_size:
                    break
                blob = self.buffer.get()
            if not batch:
                self._idle.set()
                continue
            try:
                for sink in self.sinks:
                    sink.deliver(batch, self._stop)
            except Stopped:
                self._respill(batch)
                return
            self.shipped += len(batch)

    def _respill(self, batch: list[Record]) -> None:
        """Stopping mid-retry: put the batch back on disk so the next handler ships it."""
        for r in batch:
            self.buffer.put(b"%s\x00%s" % (r.doc_id.encode(), r.raw))

    def flush(self, timeout: float = 5.0) -> bool:  # type: ignore[override]
        """Wait until everything queued so far is delivered (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not len(self.buffer) and self._idle.wait(0.05) and not len(self.buffer):
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> None:  # type: ignore[override]
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=timeout + 30)
        self.buffer.close()
        super().close()
