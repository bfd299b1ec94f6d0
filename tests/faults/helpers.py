"""Running ``corrtrace collect``/``search`` and reading back what it stored, for the fault tests."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from corrtrace.cli import main


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str  # what the command wrote, then the collector's log messages
    exception: BaseException | None


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def collect(*args: str, **env: str) -> Run:
    """``corrtrace collect ARGS`` in this process (click's runner): exit code, output and log messages."""
    logger = logging.getLogger("corrtrace")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = CliRunner().invoke(main, ["collect", *args], env=env)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Run(result.exit_code, result.stdout, result.stderr + "\n".join(handler.lines), exception)


def search(*args: str) -> Run:
    result = CliRunner().invoke(main, ["search", *args])
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Run(result.exit_code, result.stdout, result.stderr, exception)


def stored_docs(data_dir: Path) -> list[dict[str, Any]]:
    """Every document in the embedded store under ``data_dir``, in arrival order."""
    db = sqlite3.connect(data_dir / "store" / "events.sqlite3")
    try:
        return [orjson.loads(doc) for (doc,) in db.execute("SELECT doc FROM events ORDER BY seq")]
    finally:
        db.close()


def dead_letters(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "dead-letters.jsonl"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def no_traceback(result: Run) -> None:
    assert result.exception is None, repr(result.exception)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
