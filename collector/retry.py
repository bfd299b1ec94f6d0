"""The dead-letter file, and the backoff the sinks retry with (``corrtrace.backoff``, re-exported here)."""

from __future__ import annotations

import logging
import os
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from corrtrace.backoff import Backoff, Stopped
from corrtrace.shapes import whole_number

__all__ = ["Backoff", "DeadLetters", "Stopped"]

log = logging.getLogger("corrtrace.collector")
DEFAULT_MAX_BYTES = 64 << 20  # per dead-letter file (collector.dead_letter_max_mb)
DEFAULT_KEEP = 2  # rotated files kept beside it (collector.dead_letter_files)


def _line_at(path: str, offset: int, limit: int = 1 << 20) -> bytes | None:
    """The line starting at ``offset`` in ``path`` (up to ``limit`` bytes), or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
    except OSError:
        return None
    return data.split(b"\n", 1)[0].rstrip(b"\r")


class DeadLetters:
    """Append-only JSON lines of events no sink will ever accept, with the reason; counted, never silent.

    Each entry names the sink, its reason and the document as shipped (``event``); for tailed files also the
    ``file``, the byte ``offset`` of the line and, when the shipped document differs from it, the ``line`` as
    read (the pipeline keeps ``sources``, identity -> path, current)."""

    def __init__(
        self, path: str | os.PathLike[str] | None, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP
    ) -> None:
        """``max_bytes`` (0: no cap): when an entry would take the file past it, the file is renamed to
        ``<path>.1`` (``.1`` to ``.2`` ..., up to ``keep`` such files; the oldest is dropped), so a source that
        produces nothing but poison lines for months fills at most ``(keep + 1) * max_bytes`` of the disk."""
        self.path = Path(path) if path is not None else None
        self.max_bytes, self.keep = max_bytes, keep
        self.rotations = 0
        self.count = 0
        self.sources: dict[str, str] = {}
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def take_ids(self) -> set[str]:
        """The record ids dead-lettered since the last call (one line counts once, however many sinks)."""
        with self._lock:
            ids, self._ids = self._ids, set()
        return ids

    def add(self, sink: str, reason: str, raw: bytes, doc_id: str | None = None, **extra: Any) -> None:
        entry: dict[str, Any] = {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sink": sink,
            "reason": reason,
            "id": doc_id,
        }
        record_id = doc_id.split("#", 1)[0] if doc_id else None
        original = None
        if record_id:
            source, _, offset_text = record_id.rpartition("-")
            offset = whole_number(offset_text)
            if source in self.sources and offset is not None:
                entry.update(file=self.sources[source], offset=offset)
                original = _line_at(self.sources[source], offset)
        entry.update(extra)
        entry["event"] = raw.decode("utf-8", "replace")
        if original is not None and original != raw:
            entry["line"] = original.decode("utf-8", "replace")  # as read, when the shipped doc differs
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            if self.path is not None:  # written first: a line that could not be written is not counted
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.max_bytes:
                    self._make_room(len(line))
                with open(self.path, "ab") as fh:
                    fh.write(line)
            self.count += 1
            if record_id:
                self._ids.add(record_id)

    def _make_room(self, size: int) -> None:
        """Rotate the file when ``size`` more bytes would take it past ``max_bytes`` (never an empty file)."""
        assert self.path is not None
        try:
            current = self.path.stat().st_size
        except FileNotFoundError:
            return
        if not current or current + size <= self.max_bytes:
            return
        rotated = [self.path.with_name(f"{self.path.name}.{n}") for n in range(1, self.keep + 1)]
        for newer, older in reversed(list(pairwise([self.path, *rotated]))):  # .1 -> .2 first, the file -> .1 last
            if newer.exists():
                os.replace(newer, older)
        if not rotated:  # keep 0: the file starts again
            self.path.unlink()
        self.rotations += 1
        log.warning(
            "dead-letter file %s reached %d MB: moved to %s (%d kept)",
            self.path,
            current >> 20,
            rotated[0] if rotated else "nowhere",
            self.keep,
        )
