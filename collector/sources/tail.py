"""Tail JSON-lines files by glob, following rotation by rename and by truncation (copytruncate).

A file's identity is a fingerprint of its first line (so a renamed file, or the copy ``copytruncate`` makes,
is recognised as the same content); device + inode find the open file again on each scan and detect
truncation. Offsets start from the checkpoint, which only moves after every sink acknowledged.
Fingerprint caveat: two files whose first lines are byte-identical look like one file; JSON log lines carry
a millisecond timestamp and pid, so this needs two files started in the same millisecond by the same process.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from itertools import accumulate, islice, repeat
from operator import add
from typing import Any

from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.parsers import LineFormat
from corrtrace.collector.record import Pieces
from corrtrace.collector.sources.base import RawLine

log = logging.getLogger("corrtrace.collector.tail")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")


def _mtime(entry: os.DirEntry[str]) -> float:
    """When a directory entry last changed; -1 when it cannot be read (a broken or looping symlink)."""
    try:
        return entry.stat().st_mtime
    except OSError:
        return -1.0


def _literal_head(name: str) -> str:
    """The part of a file name pattern before its first wildcard (``app.log`` of ``app.log*``)."""
    for i, char in enumerate(name):
        if char in "*?[":
            return name[:i]
    return name


def fingerprint_of(fd: int, limit: int = 4096) -> str | None:
    """Hash of the first line (up to ``limit`` bytes); None until that line is complete."""
    head = os.pread(fd, limit, 0)
    nl = head.find(b"\n")
    if nl < 0:
        if len(head) < limit:
            return None
        nl = limit
    return hashlib.blake2b(head[:nl], digest_size=8).hexdigest()


def _split_lines(data: bytes, fp: str, base: int, room: int, out: list[RawLine]) -> int:
    """Up to ``room`` complete lines of ``data`` (at ``base`` in file ``fp``) onto ``out`` with their offsets,
    all in C (split, accumulate, zip), when none ends in ``\\r`` or may be blank (starts with a byte <= space);
    returns the bytes consumed, or -1 (nothing added) for data to be read line by line."""
    if b"\r" in data:
        return -1
    lines = data.split(b"\n", max(room, 0))
    rest = lines.pop()  # after the last newline taken: a partial line, or the lines beyond ``room``
    if not lines:
        return 0
    first = min(lines)  # a line starting with white space sorts before any other line
    if not first or first[0] <= 32:
        return -1
    bounds = list(accumulate(map(add, map(len, lines), repeat(1)), initial=base))
    out.extend(zip(repeat(fp), bounds, islice(bounds, 1, None), lines))
    return len(data) - len(rest)


def _each_line(data: bytes, last: int, real: int, fp: str, base: int, room: int, out: list[RawLine]) -> int:
    """Up to ``room`` lines of ``data`` (complete up to ``last``; ``real`` bytes were read) onto ``out``: a
    trailing ``\\r`` cut, blank lines skipped; returns the bytes consumed."""
    pos = 0
    while room > 0:
        nl = data.find(b"\n", pos, last + 1)
        if nl < 0:
            break
        line = data[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            out.append((fp, base + pos, base + min(nl + 1, real), line))
            room -= 1
        pos = nl + 1
    return pos


def _mark_pieces(r: _Reader, out: list[RawLine], first: int, base: int, cut: bool) -> None:
    """Mark the pieces of a line longer than ``max_line_bytes``: the one this read cut (``cut``), and the first
    line of the read after one (it starts where the piece ended: the rest of the line)."""
    source, start, end, line = out[first]
    if start != base:  # the rest of the long line was blank (skipped): the line before it is over
        r.pieces.current = None
    out[first] = (source, start, end, r.pieces.mark(line, cut))


@dataclass
class _Reader:
    fd: int
    dev: int
    ino: int
    path: str
    fp: str | None = None
    offset: int = 0
    gone_since: float | None = None
    last_read: float = field(default_factory=time.monotonic)
    eof: bool = False
    pieces: Pieces = field(default_factory=Pieces)  # mid-way through a line longer than max_line_bytes
    held: bool = False  # a one-shot run left this file's unfinished last line for the next run (said once)


class FileTail:
    """Poll-based tailer: ``read(max_lines, max_bytes)`` returns complete lines with their offsets."""

    fmt: LineFormat | None = None

    def __init__(
        self,
        patterns: list[str],
        checkpoint: Checkpoint,
        *,
        start_at_end: bool = False,
        scan_interval: float = 0.25,
        close_inactive: float = 5.0,
        max_line_bytes: int = 16 << 20,
    ) -> None:
        self.patterns = patterns
        self.checkpoint = checkpoint
        self.start_at_end = start_at_end
        self.scan_interval = scan_interval
        self.close_inactive = close_inactive
        self.max_line_bytes = max_line_bytes
        self.readers: dict[tuple[int, int], _Reader] = {}
        self.by_fp: dict[str, tuple[int, int]] = {}
        self.retired: dict[str, int] = {}  # fingerprint -> read offset of a truncated original (copy resumes here)
        self.truncations = 0
        self._last_scan = 0.0
        self._rr = 0
        self._first_scan = True
        self._draining: set[tuple[int, int]] = set()  # renamed while we were down: finished before the rest
        self._unreadable: set[str] = set()  # paths a warning was written for (bounded)

    # -- discovery ---------------------------------------------------------------------------------------------
    def scan(self) -> None:
        self._last_scan = time.monotonic()
        seen: dict[tuple[int, int], str] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:  # a symlink loop, a name too long, no permission on a directory
                    self._cannot_read(path, exc)
                    continue
                if stat.S_ISREG(st.st_mode):  # not a FIFO (opening one blocks), a device or a directory
                    seen.setdefault((st.st_dev, st.st_ino), path)
        if self._first_scan:
            self._first_scan = False
            for key, path in self._moved_while_down(seen).items():
                seen[key] = path
                self._draining.add(key)
        now = time.monotonic()
        for key, r in list(self.readers.items()):  # existing files first: detect truncation before new copies
            if key in seen:
                r.path, r.gone_since = seen[key], None
            elif r.gone_since is None:
                r.gone_since = now
            copy = self._check_truncation(r)
            if copy is not None and copy[0] not in self.readers:
                seen.setdefault(*copy)
                self._draining.add(copy[0])
        for key, path in seen.items():
            if key not in self.readers:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError as exc:
                    self._cannot_read(path, exc)
                    continue
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != key:
                    os.close(fd)
                    continue
                self.readers[key] = _Reader(fd, key[0], key[1], path)
        for key, r in list(self.readers.items()):
            if r.fp is None:
                self._identify(key, r)

    def _cannot_read(self, path: str, exc: OSError) -> None:
        """Say once per file why it is skipped (no permission, a symlink loop); the other files go on."""
        if path not in self._unreadable and len(self._unreadable) < 1000:
            self._unreadable.add(path)
            log.warning("cannot read %s (%s); skipping it, the other files go on", path, exc.strerror or exc)

    def _moved_while_down(self, seen: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
        """Checkpointed files with unread lines that the patterns no longer name: rotated by rename (or copied
        and truncated) while the collector was down."""
        found: dict[tuple[int, int], str] = {}
        for fp, entry in self.checkpoint.snapshot().items():
            path = str(entry.get("path") or "")
            if not path or not self._watched(path):
                continue
            hit = self._find_elsewhere(path, fp, int(entry["offset"]), entry.get("ino"))
            if hit is not None and hit[0] not in seen:
                log.info("finishing %s first: it was %s (rotated while the collector was down)", hit[1], path)
                found[hit[0]] = hit[1]
        for key, path in self._unseen_rotations({**seen, **found}).items():
            log.info("reading %s first: written and rotated while the collector was down", path)
            found[key] = path
        return found

    def _watched(self, path: str) -> bool:
        """``path`` is (or was, before a rotation renamed it) one of the files the patterns name."""
        directory, name = os.path.split(path)
        return any(
            fnmatch.fnmatch(path, pattern)
            or (os.path.dirname(pattern) == directory and name.startswith(_literal_head(os.path.basename(pattern))))
            for pattern in self.patterns
        )

    def _unseen_rotations(self, known: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
        """Files named like a live file (``app.log.2``) that the checkpoint never saw although they changed
        since the collector first watched that name: created and rotated away while it was down (more than one
        rotation, or before its first commit). Compressed copies are left alone."""
        state = self.checkpoint.snapshot()
        found: dict[tuple[int, int], str] = {}
        for pattern in self.patterns:
            directory, base = os.path.split(pattern)
            base = _literal_head(base)
            since = self.checkpoint.watching(pattern)
            if since is None or not base or any(c in directory for c in "*?["):
                continue  # a first start (nothing to catch up on), or a pattern without a fixed name
            try:
                with os.scandir(directory or ".") as it:
                    names = [e for _, e in zip(range(1000), it, strict=False)]
            except OSError:
                continue
            for item in sorted(names, key=_mtime):
                if not item.name.startswith(base) or item.name.endswith(_COMPRESSED):
                    continue
                try:
                    st = item.stat()
                except OSError:  # gone, or a symlink that leads nowhere (or in a loop)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                key = (st.st_dev, st.st_ino)
                if key in known or key in found or st.st_mtime <= since:
                    continue
                try:
                    fd = os.open(item.path, os.O_RDONLY)
                except OSError:
                    continue
                try:
                    fp = fingerprint_of(fd)
                finally:
                    os.close(fd)
                if fp is not None and fp not in state:
                    found[key] = item.path
        return found

    def _find_elsewhere(self, path: str, fp: str, offset: int, ino: Any = None) -> tuple[tuple[int, int], str] | None:
        """The file ``fp``, with lines after ``offset``, in the directory of ``path``: by inode, else by head
        fingerprint among the files whose name starts with the original one (at most 1,000 names looked at)."""
        directory, base = os.path.split(path)
        try:
            with os.scandir(directory or ".") as it:
                names = [e for _, e in zip(range(1000), it, strict=False)]
        except OSError:
            return None
        for item in sorted(names, key=lambda e: (e.inode() != ino, not e.name.startswith(base), e.name)):
            if item.inode() != ino and not item.name.startswith(base):
                return None
            key = self._unread_copy(item.path, fp, offset)
            if key is not None:
                return key, item.path
        return None

    @staticmethod
    def _unread_copy(path: str, fp: str, offset: int) -> tuple[int, int] | None:
        """(device, inode) of ``path`` when it holds the file ``fp`` with lines after ``offset``."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not os.path.isfile(path) or st.st_size <= offset or fingerprint_of(fd) != fp:
                return None
            return st.st_dev, st.st_ino
        finally:
            os.close(fd)

    def _identify(self, key: tuple[int, int], r: _Reader) -> None:
        fp = fingerprint_of(r.fd)
        if fp is None:
            return
        owner = self.by_fp.get(fp)
        if owner is not None and owner != key and owner in self.readers:
            return  # a copy of a file we are reading (copytruncate in progress): wait for the truncation
        r.fp = fp
        self.by_fp[fp] = key
        size = os.fstat(r.fd).st_size
        if fp in self.retired:
            r.offset = self.retired.pop(fp)
        else:
            saved = self.checkpoint.offset(fp)
            r.offset = saved if saved is not None else (size if self.start_at_end else 0)
            if saved is None:
                self.checkpoint.register(fp, r.offset, r.path, (r.dev, r.ino))
        if r.offset > size:  # the same first line, but shorter than what was read: truncated and rewritten
            log.warning(
                "%s is shorter (%d bytes) than its checkpoint (%d): it was truncated, reading it from the start",
                r.path,
                size,
                r.offset,
            )
            r.offset = 0

    def _check_truncation(self, r: _Reader) -> tuple[tuple[int, int], str] | None:
        """Detect a truncated file; returns its copy (copytruncate) when one is in the same directory."""
        if r.fp is None:
            return None
        size = os.fstat(r.fd).st_size
        if size >= r.offset and fingerprint_of(r.fd) == r.fp:
            return None
        self.truncations += 1
        log.info("file truncated: %s (fingerprint %s at offset %d)", r.path, r.fp, r.offset)
        self.retired[r.fp] = r.offset
        if self.by_fp.get(r.fp) == (r.dev, r.ino):
            del self.by_fp[r.fp]
        copy = self._find_elsewhere(r.path, r.fp, r.offset)  # copytruncate: finish the copy from here
        r.fp, r.offset, r.eof = None, 0, False
        return copy

    # -- reading -----------------------------------------------------------------------------------------------
    def read(self, max_lines: int = 10_000, max_bytes: int = 8 << 20, final: bool = False) -> list[RawLine]:
        """Up to ``max_lines`` complete lines; ``final`` also returns a last line that has no newline yet."""
        if time.monotonic() - self._last_scan >= self.scan_interval:
            self.scan()
        out: list[RawLine] = []
        budget = max_bytes
        readers = [r for r in self.readers.values() if r.fp is not None]
        if self._draining:
            first = [r for r in readers if (r.dev, r.ino) in self._draining]
            self._draining = {(r.dev, r.ino) for r in first if not r.eof}
            readers = [r for r in first if not r.eof] or readers
        if not readers:
            self._close_inactive()
            return out
        self._rr = (self._rr + 1) % len(readers)
        for r in readers[self._rr :] + readers[: self._rr]:
            if len(out) >= max_lines or budget <= 0:
                break
            budget -= self._read_one(r, out, max_lines, budget, final)
        self._close_inactive()
        return out

    def _read_one(self, r: _Reader, out: list[RawLine], max_lines: int, budget: int, final: bool = False) -> int:
        fp = r.fp
        assert fp is not None
        want = max(64 << 10, min(budget, 4 << 20))
        data = os.pread(r.fd, want, r.offset)
        if not data:
            r.eof = True
            return 0
        last = data.rfind(b"\n")
        real = len(data)  # before a newline added to a final partial line: offsets never pass the file's end
        cut = False  # this read ends inside a line longer than max_line_bytes
        if last < 0:
            if len(data) < want:  # a partial last line: wait for its newline, unless this is the final read
                if not final or self._still_written(r):
                    r.eof = True
                    return 0
                data += b"\n"
            else:  # a very long line: read up to max_line_bytes; longer ones are shipped in pieces, never dropped
                data = os.pread(r.fd, self.max_line_bytes, r.offset)
                real = len(data)
                if data.rfind(b"\n") < 0:
                    data += b"\n"
                    cut = True
            last = data.rfind(b"\n")
        short = len(data) < want
        base = r.offset
        room = max_lines - len(out)
        first = len(out)
        pos = _split_lines(data, fp, base, room, out) if real == len(data) else -1
        if pos < 0:
            pos = _each_line(data, last, real, fp, base, room, out)
        if (cut or r.pieces.current is not None) and len(out) > first:
            _mark_pieces(r, out, first, base, cut)
        r.eof = short and pos == last + 1
        r.offset = base + min(pos, real)  # what was read belongs to this file even if it was truncated since
        r.last_read = time.monotonic()
        return pos

    def _close_inactive(self) -> None:
        now = time.monotonic()
        for key, r in list(self.readers.items()):
            if r.gone_since is not None and r.eof and now - max(r.gone_since, r.last_read) >= self.close_inactive:
                os.close(r.fd)
                del self.readers[key]
                if r.fp is not None and self.by_fp.get(r.fp) == key:
                    del self.by_fp[r.fp]

    def _still_written(self, r: _Reader) -> bool:
        """A last line without a newline in a file changed less than ``close_inactive`` ago is being written:
        a one-shot run leaves it (its checkpoint stays before it) so that the next run ships it whole, with its
        correlation ID, instead of in two pieces. An older one is a finished line and is shipped."""
        age = time.time() - os.fstat(r.fd).st_mtime
        if age >= self.close_inactive:
            return False
        if not r.held:
            r.held = True
            log.warning(
                "%s: its last line has no newline yet and the file changed %.1f s ago; it is left for the next run",
                r.path,
                max(age, 0.0),
            )
        return True

    def at_eof(self) -> bool:
        """Every known file is read to its end, or up to a last line that is still being written (one-shot runs)."""
        self.scan()
        for r in self.readers.values():
            if r.fp is None:
                continue
            rest = os.pread(r.fd, 1 << 20, r.offset)
            if rest and (b"\n" in rest or len(rest) == 1 << 20 or not self._still_written(r)):
                return False
        return True

    def paths(self) -> dict[str, str]:
        return {r.fp: r.path for r in self.readers.values() if r.fp is not None}

    def identities(self) -> dict[str, tuple[int, int]]:
        """Source identity -> (device, inode), kept in the checkpoint to find a file renamed while down."""
        return {r.fp: (r.dev, r.ino) for r in self.readers.values() if r.fp is not None}

    def unresumable(self) -> set[str]:
        """None: every file is read again from its checkpointed offset."""
        return set()

    def line_before(self, source: str, offset: int, prefix: bytes = b"{", limit: int = 64 << 10) -> bytes | None:
        """The last line starting with ``prefix`` in the ``limit`` bytes before ``offset`` of file ``source``
        (the multiline joiner's nearest JSON line, when it was shipped before a restart)."""
        key = self.by_fp.get(source)
        reader = self.readers.get(key) if key is not None else None
        if reader is None or offset <= 0:
            return None
        start = max(0, offset - limit)
        lines = os.pread(reader.fd, offset - start, start).split(b"\n")
        for line in reversed(lines[1:] if start else lines):
            if line.startswith(prefix):
                return line.rstrip(b"\r")
        return None

    def close(self) -> None:
        for r in self.readers.values():
            os.close(r.fd)
        self.readers.clear()
        self.by_fp.clear()
