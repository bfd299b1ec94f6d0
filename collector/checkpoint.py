"""File offsets that advance only after every sink acknowledged the events before them (at least once)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson


class Checkpoint:
    """``{source identity: offset}`` in one JSON file, replaced atomically (write, fsync, rename) on commit."""

    def __init__(self, path: str | os.PathLike[str] | None, *, max_entries: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            try:
                loaded = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{self.path}: checkpoint file is corrupt ({exc}); move it away to re-ship") from None
            self._data = {k: v for k, v in loaded.get("sources", {}).items() if isinstance(v, dict)}

    def offset(self, source: str) -> int | None:
        """The acknowledged offset of ``source``, or None when it was never seen."""
        with self._lock:
            entry = self._data.get(source)
        return int(entry["offset"]) if entry else None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._data.items()}

    def commit(self, updates: dict[str, tuple[int, str]]) -> None:
        """Record ``{source: (end offset, path)}`` as delivered; offsets never move backwards."""
        if not updates:
            return
        now = time.time()
        with self._lock:
            for source, (offset, path) in updates.items():
                entry = self._data.get(source)
                if entry is None or offset > int(entry["offset"]):
                    self._data[source] = {"offset": offset, "path": path, "updated": now}
            if len(self._data) > self.max_entries:
                oldest = sorted(self._data, key=lambda k: self._data[k]["updated"])
                for key in oldest[: len(self._data) - self.max_entries]:
                    del self._data[key]
            payload = orjson.dumps({"version": 1, "sources": self._data})
        self._write(payload)

    def _write(self, payload: bytes) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
