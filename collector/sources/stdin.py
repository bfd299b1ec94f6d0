"""Lines from standard input (or any binary stream); ids are unique per run, there is nothing to resume."""

from __future__ import annotations

import sys
import threading
import uuid
from typing import IO

from corrtrace.collector.parsers import LineFormat
from corrtrace.collector.sources.base import RawLine


class StreamSource:
    """Reads a binary stream in a helper thread so the pipeline never blocks on it."""

    fmt: LineFormat | None = None

    def __init__(self, stream: IO[bytes] | None = None, *, max_pending: int = 50_000) -> None:
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.identity = f"stdin-{uuid.uuid4().hex[:12]}"
        self._pending: list[RawLine] = []
        self._cond = threading.Condition()
        self._max_pending = max_pending
        self._eof = False
        self._thread = threading.Thread(target=self._pump, name="corrtrace-stdin", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        offset = 0
        for line in iter(self.stream.readline, b""):
            end = offset + len(line)
            text = line.rstrip(b"\r\n")
            with self._cond:
                while len(self._pending) >= self._max_pending:
                    self._cond.wait(0.5)
                if text.strip():
                    self._pending.append((self.identity, offset, end, text))
            offset = end
        with self._cond:
            self._eof = True

    def read(self, max_lines: int, max_bytes: int, final: bool = False) -> list[RawLine]:
        with self._cond:
            out, self._pending = self._pending[:max_lines], self._pending[max_lines:]
            self._cond.notify_all()
        return out

    def at_eof(self) -> bool:
        with self._cond:
            return self._eof and not self._pending

    def paths(self) -> dict[str, str]:
        return {}

    def identities(self) -> dict[str, tuple[int, int]]:
        return {}

    def unresumable(self) -> set[str]:
        """A stream read once: its offsets mean nothing to the next run."""
        return {self.identity}

    def close(self) -> None:
        pass
