"""Follow growing log files (``tail -F``) for ``alerts evaluate --follow`` and the demo's alert engine.

The collector's tailer (``corrtrace.collector.sources.tail.FileTail``) does the reading, so the alerts see a file
exactly as the collector ships it: only complete lines; a file renamed away (rotation) is read to its end
before the new one, which is read from its start; a truncated file restarts at 0, and a ``copytruncate`` copy
next to it is finished first. The offsets live in memory: each ``follow`` starts afresh (see
collector/README.md, "File identity and rotation").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.sources.tail import FileTail

MAX_LINE = 1 << 20  # a longer line reaches ``on_line`` in pieces of this size
BATCH_LINES = 10_000
BATCH_BYTES = 8 << 20


def follow(
    paths: Sequence[str],
    on_line: Callable[[str], None],
    stop: threading.Event,
    *,
    interval: float = 0.2,
    from_start: bool = True,
    on_idle: Callable[[], None] | None = None,
) -> None:
    """Call ``on_line`` for every new line of ``paths`` until ``stop`` is set; ``on_idle`` runs each pass.

    ``from_start=False`` skips what the files hold when following starts; files that appear later (a rotation)
    are read from their start."""
    tail = FileTail(
        list(paths), Checkpoint(None), start_at_end=not from_start, scan_interval=interval, max_line_bytes=MAX_LINE
    )
    if not from_start:
        tail.scan()  # the files there now start at their end
        tail.start_at_end = False
    try:
        while not stop.is_set():
            lines = tail.read(BATCH_LINES, BATCH_BYTES)
            for _, _, _, raw in lines:
                on_line(raw.decode("utf-8", "replace"))
            if on_idle is not None:
                on_idle()
            if not lines:
                stop.wait(interval)
    finally:
        tail.close()
