"""Follow growing log files (``tail -F``): new complete lines go to a callback; truncation and rotation
(a new inode at the same path) restart from the top of the new file. Used by ``alerts evaluate --follow``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 1 << 20
HEAD = 64


@dataclass
class _Followed:
    handle: BinaryIO
    inode: int
    pending: bytes = b""
    head: bytes = b""  # the file's first bytes: a truncated-and-rewritten file no longer starts with them


def follow(
    paths: Sequence[str],
    on_line: Callable[[str], None],
    stop: threading.Event,
    *,
    interval: float = 0.2,
    from_start: bool = True,
    on_idle: Callable[[], None] | None = None,
) -> None:
    """Call ``on_line`` for every new line of ``paths`` until ``stop`` is set; ``on_idle`` runs each pass."""
    files: dict[str, _Followed] = {}
    first = True
    try:
        while not stop.is_set():
            progressed = False
            for path in paths:
                progressed |= _pump(path, files, on_line, from_start or not first)
            first = False
            if on_idle is not None:
                on_idle()
            if not progressed:
                stop.wait(interval)
    finally:
        for item in files.values():
            item.handle.close()


def _pump(path: str, files: dict[str, _Followed], on_line: Callable[[str], None], from_start: bool) -> bool:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    item = files.get(path)
    if item is not None and (
        item.inode != info.st_ino
        or info.st_size < item.handle.tell()
        or (item.head and os.pread(item.handle.fileno(), len(item.head), 0) != item.head)
    ):
        item.handle.close()
        item = None
        from_start = True  # rotated or truncated: the new content is all new
    if item is None:
        handle = open(path, "rb")  # noqa: SIM115 - kept open while following
        if not from_start:
            handle.seek(0, os.SEEK_END)
        item = files[path] = _Followed(handle, info.st_ino)
    if len(item.head) < HEAD:
        item.head = os.pread(item.handle.fileno(), HEAD, 0)
    chunk = item.handle.read(1 << 20)
    if not chunk:
        return False
    data = item.pending + chunk
    *lines, item.pending = data.split(b"\n")
    if len(item.pending) > MAX_LINE:  # a runaway line without newline: drop it rather than grow forever
        item.pending = b""
    for raw in lines:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if text:
            on_line(text)
    return True
