"""Test helpers for log files on disk."""

from __future__ import annotations

import os
import time
from pathlib import Path


def finished(path: Path, ago: float = 60.0) -> Path:
    """Date ``path``'s last change ``ago`` seconds back: its writer is done with it, so a one-shot run ships a
    last line without a newline instead of leaving it for the next run (collector/README.md, "one-shot runs")."""
    then = time.time() - ago
    os.utime(path, (then, then))
    return path
