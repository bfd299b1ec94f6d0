"""File offsets that advance only after every sink acknowledged the events before them (at least once)."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from corrtrace.errors import StateError

log = logging.getLogger("corrtrace.collector")
LOCK_FILE = "collector.lock"


def claim(data_dir: Path) -> tuple[int | None, str | None]:
    """Make this process the one collector of ``data_dir`` (its checkpoint has one writer): an exclusive
    ``flock`` on ``data_dir/collector.lock``, held until it is closed or the process ends (a SIGKILL releases
    it too). Returns the lock's descriptor, or the pid of another collector that holds it (two collectors on
    one checkpoint ship every line twice, which CloudWatch cannot drop). A lock file that cannot be made (a
    full disk) costs a warning, not the start: a full disk pauses shipping, it never stops the collector."""
    import fcntl

    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        log.warning("cannot make %s (%s): another collector on this data_dir would not be noticed", path, exc.strerror)
        return None, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 20, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        return None, holder
    try:  # the pid only names this collector to a second one: a full disk may keep it out
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError:
        pass
    return fd, None


_MOVE_AWAY = (
    "move it away to ship every file again from the start (Elasticsearch and the embedded store drop the repeats)"
)


def _entries(path: Path, loaded: Any) -> dict[str, dict[str, Any]]:
    """The ``sources`` map of a checkpoint file, every entry checked: a bad one is an error, never skipped."""
    sources = loaded.get("sources") if isinstance(loaded, dict) else None
    if not isinstance(sources, dict):
        raise StateError(
            f'{path}: checkpoint file is corrupt (expected an object with "sources", got '
            f"{type(loaded).__name__}); {_MOVE_AWAY}"
        )
    out: dict[str, dict[str, Any]] = {}
    for key, entry in sources.items():
        offset = entry.get("offset") if isinstance(entry, dict) else None
        if type(offset) is not int or offset < 0:
            raise StateError(
                f"{path}: checkpoint file is corrupt (source {key[:40]!r}: offset {offset!r} is not a "
                f"byte offset); {_MOVE_AWAY}"
            )
        out[key] = entry
    return out


class Checkpoint:
    """``{source identity: offset}`` in one JSON file, replaced atomically (write, fsync, rename) on commit.

    A full disk does not stop the shipper: the new state is kept in memory, the old file stays whole, and the
    write is retried on the next commit (or ``flush``) until it lands; each change of state is logged once.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, max_entries: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._watch: dict[str, float] = {}
        self.write_failing = False
        if self.path is not None and self.path.exists():
            try:
                loaded = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise StateError(f"{self.path}: checkpoint file is corrupt ({exc}); {_MOVE_AWAY}") from None
            except OSError as exc:
                raise StateError(f"{self.path}: cannot read the checkpoint ({exc.strerror})") from None
            self._data = _entries(self.path, loaded)
            watch = loaded.get("watch")
            self._watch = (
                {str(k): float(v) for k, v in watch.items() if isinstance(v, int | float)}
                if isinstance(watch, dict)
                else {}
            )

    def offset(self, source: str) -> int | None:
        """The acknowledged offset of ``source``, or None when it was never seen."""
        with self._lock:
            entry = self._data.get(source)
        return int(entry["offset"]) if entry else None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._data.items()}

    def commit(self, updates: dict[str, tuple[int, str]], where: dict[str, tuple[int, int]] | None = None) -> None:
        """Record ``{source: (end offset, path)}`` as delivered; offsets never move backwards. ``where`` adds
        ``{source: (device, inode)}`` so a file renamed while the collector was down is found again."""
        if not updates:
            return
        now = time.time()
        with self._lock:
            for source, (offset, path) in updates.items():
                entry = self._data.get(source)
                if entry is None or offset > int(entry["offset"]):
                    entry = self._data[source] = {"offset": offset, "path": path, "updated": now}
                    if where and source in where:
                        entry["dev"], entry["ino"] = where[source]
            if len(self._data) > self.max_entries:
                oldest = sorted(self._data, key=lambda k: self._data[k]["updated"])
                for key in oldest[: len(self._data) - self.max_entries]:
                    del self._data[key]
            self._dirty = True
        self.flush()

    def watching(self, pattern: str) -> float | None:
        """When the collector first watched ``pattern`` (None the first time: then it starts now)."""
        with self._lock:
            since = self._watch.get(pattern)
            if since is None:
                self._watch[pattern] = time.time()
                self._dirty = True
        if since is None:
            self.flush()
        return since

    def register(self, source: str, offset: int, path: str, where: tuple[int, int]) -> None:
        """Note a file the moment it is first read, so that it is found again if it is renamed before any of
        its lines were acknowledged (and the collector stops in between)."""
        with self._lock:
            if source in self._data:
                return
            self._data[source] = {
                "offset": offset,
                "path": path,
                "updated": time.time(),
                "dev": where[0],
                "ino": where[1],
            }
            self._dirty = True
        self.flush()

    def flush(self) -> bool:
        """Write the state if it changed; False (and retried later) when the disk is full."""
        with self._write_lock:  # one writer at a time (the reader registers files, the shipper commits)
            return self._flush()

    def _flush(self) -> bool:
        with self._lock:
            if not self._dirty:
                return True
            payload = orjson.dumps({"version": 1, "sources": self._data, "watch": self._watch})
            self._dirty = False
        try:
            self._write(payload)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            with self._lock:
                self._dirty = True
            if not self.write_failing:
                self.write_failing = True
                log.warning(
                    "cannot write the checkpoint %s: %s; shipping goes on, the last checkpoint stays valid "
                    "and the write is retried",
                    self.path,
                    exc.strerror,
                )
            return False
        if self.write_failing:
            self.write_failing = False
            log.warning("checkpoint %s written again (disk space is back)", self.path)
        return True

    def _write(self, payload: bytes) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # never leave a partial copy beside (or instead of) the real one
            raise
