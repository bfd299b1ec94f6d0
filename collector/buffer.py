"""A bounded FIFO of byte blobs: memory first, then segment files on disk, with an explicit policy when full.

``block`` (the pipeline: the reader pauses and the tailed files are the buffer) or ``drop_oldest`` (the logging
handler: the request path never waits; drops are counted and reported).
"""

from __future__ import annotations

import collections
import io
import os
import struct
import threading
from pathlib import Path

_LEN = struct.Struct("<I")


class DiskBuffer:
    """FIFO of blobs; once anything spilled, new blobs go to disk too, so the order is kept."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        memory_items: int = 2,
        max_bytes: int = 256 << 20,
        segment_bytes: int = 16 << 20,
        policy: str = "block",
        resume: bool = False,
    ) -> None:
        if policy not in ("block", "drop_oldest"):
            raise ValueError("policy must be 'block' or 'drop_oldest'")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.memory_items = memory_items
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.policy = policy
        self.dropped = 0
        self.peak_disk_bytes = 0
        self._mem: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._segments: collections.deque[Path] = collections.deque()
        self._read_fh: io.BufferedReader | None = None
        self._read_pos = 0
        self._write_fh: io.FileIO | None = None
        self._write_size = 0
        self._disk_bytes = 0
        self._count_disk = 0
        existing = sorted(self.dir.glob("*.seg"))
        if resume:
            for seg in existing:
                self._segments.append(seg)
                self._disk_bytes += seg.stat().st_size
                self._count_disk += _count_frames(seg)
        else:
            for seg in existing:
                seg.unlink()
        self._next_seg = int(existing[-1].stem) + 1 if existing else 1

    # -- sizes -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._cond:
            return len(self._mem) + self._count_disk

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    # -- producer ----------------------------------------------------------------------------------------------
    def put(self, blob: bytes, stop: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Append ``blob``. ``block`` waits for room (False if stopped or timed out); ``drop_oldest`` never waits."""
        with self._cond:
            if not self._count_disk and len(self._mem) < self.memory_items:
                self._mem.append(blob)
                self._cond.notify_all()
                return True
            need = len(blob) + _LEN.size
            while self._disk_bytes + need > self.max_bytes and self._count_disk:
                if self.policy == "drop_oldest":
                    self._drop_oldest_segment()
                    continue
                stopped = stop is not None and stop.is_set()
                if (stopped or not self._cond.wait(timeout if timeout else 0.2)) and (
                    timeout is not None or (stop is not None and stop.is_set())
                ):
                    return False
            self._append_disk(blob)
            self._cond.notify_all()
            return True

    def _append_disk(self, blob: bytes) -> None:
        fh = self._write_fh
        if fh is None or self._write_size >= self.segment_bytes:
            fh = self._roll()
        fd = fh.fileno()
        frame = memoryview(_LEN.pack(len(blob)) + blob)
        try:
            while frame:
                frame = frame[os.write(fd, frame) :]
        except OSError:
            os.ftruncate(fd, self._write_size)  # a full disk leaves no partial frame behind
            raise
        self._write_size += len(blob) + _LEN.size
        self._disk_bytes += len(blob) + _LEN.size
        self._count_disk += 1
        self.peak_disk_bytes = max(self.peak_disk_bytes, self._disk_bytes)

    def _roll(self) -> io.FileIO:
        """Start a new segment file; returns its (unbuffered) handle."""
        if self._write_fh is not None:
            self._write_fh.close()
        path = self.dir / f"{self._next_seg:012d}.seg"
        self._next_seg += 1
        fh = self._write_fh = open(path, "ab", buffering=0)  # noqa: SIM115
        self._write_size = 0
        self._segments.append(path)
        return fh

    def _drop_oldest_segment(self) -> None:
        seg = self._segments.popleft()
        if self._read_fh is not None:
            self._read_fh.close()
            self._read_fh = None
        if self._write_fh is not None and not self._segments:
            self._write_fh.close()
            self._write_fh = None
        frames = _count_frames(seg, start=self._read_pos)
        self._disk_bytes -= seg.stat().st_size - self._read_pos
        self._count_disk -= frames
        self.dropped += frames
        self._read_pos = 0
        seg.unlink()

    # -- consumer ----------------------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> bytes | None:
        """The oldest blob, waiting up to ``timeout``; None when empty."""
        with self._cond:
            if not self._mem and not self._count_disk and timeout:
                self._cond.wait(timeout)
            if self._mem:
                blob = self._mem.popleft()
                self._cond.notify_all()
                return blob
            if not self._count_disk:
                return None
            blob = self._read_disk()
            self._cond.notify_all()
            return blob

    def _read_disk(self) -> bytes:
        while True:
            seg = self._segments[0]
            fh = self._read_fh
            if fh is None:
                fh = self._read_fh = open(seg, "rb")  # noqa: SIM115
                fh.seek(self._read_pos)
            head = fh.read(_LEN.size)
            if len(head) == _LEN.size:
                (size,) = _LEN.unpack(head)
                blob = fh.read(size)
                self._read_pos += size + _LEN.size
                self._disk_bytes -= size + _LEN.size
                self._count_disk -= 1
                if not self._count_disk:
                    self._reset_disk()
                return blob
            # this segment is used up: delete it and go on with the next
            fh.close()
            self._read_fh = None
            self._read_pos = 0
            self._segments.popleft()
            if self._write_fh is not None and not self._segments:
                self._write_fh.close()
                self._write_fh = None
            seg.unlink()

    def _reset_disk(self) -> None:
        if self._read_fh is not None:
            self._read_fh.close()
            self._read_fh = None
        if self._write_fh is not None:
            self._write_fh.close()
            self._write_fh = None
        for seg in self._segments:
            seg.unlink(missing_ok=True)
        self._segments.clear()
        self._read_pos = 0
        self._disk_bytes = 0

    def close(self) -> None:
        with self._cond:
            for fh in (self._read_fh, self._write_fh):
                if fh is not None:
                    fh.close()
            self._read_fh = self._write_fh = None


def _count_frames(path: Path, start: int = 0) -> int:
    count = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        while True:
            head = fh.read(_LEN.size)
            if len(head) < _LEN.size:
                return count
            fh.seek(_LEN.unpack(head)[0], os.SEEK_CUR)
            count += 1
