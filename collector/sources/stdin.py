"""Lines from standard input (or any binary stream); ids are unique per run, there is nothing to resume."""

from __future__ import annotations

import sys
import threading
import uuid
from typing import IO

from corrtrace.collector.parsers import LineFormat
from corrtrace.collector.record import Pieces
from corrtrace.collector.sources.base import RawLine


class StreamSource:
    """Reads a binary stream in a helper thread so the pipeline never blocks on it. What it holds is bounded:
    a line longer than ``max_line_bytes`` comes in pieces (as from a file: collector/README.md, "Lines longer
    than max_line_bytes"), and the helper waits while ``max_pending`` lines or ``max_pending_bytes`` wait."""

    fmt: LineFormat | None = None

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        max_pending: int = 50_000,
        max_line_bytes: int = 16 << 20,
        max_pending_bytes: int = 64 << 20,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.identity = f"stdin-{uuid.uuid4().hex[:12]}"
        self.max_line_bytes = max_line_bytes
        self._pending: list[RawLine] = []
        self._pending_bytes = 0
        self._cond = threading.Condition()
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._eof = False
        self._thread = threading.Thread(target=self._pump, name="corrtrace-stdin", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        offset = 0
        pieces = Pieces()
        while line := self.stream.readline(self.max_line_bytes):
            end = offset + len(line)
            cut = len(line) >= self.max_line_bytes and not line.endswith(b"\n")
            text = line.rstrip(b"\r\n")
            with self._cond:
                while len(self._pending) >= self._max_pending or self._pending_bytes >= self._max_pending_bytes:
                    self._cond.wait(0.5)
                if text.strip() or cut:
                    self._pending.append((self.identity, offset, end, pieces.mark(text, cut)))
                    self._pending_bytes += len(text)
                else:
                    pieces.current = None  # the rest of a cut line was blank: that line is over
            offset = end
        with self._cond:
            self._eof = True

    def read(self, max_lines: int, max_bytes: int, final: bool = False) -> list[RawLine]:
        with self._cond:
            out, self._pending = self._pending[:max_lines], self._pending[max_lines:]
            self._pending_bytes -= sum(len(line) for _, _, _, line in out)
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
