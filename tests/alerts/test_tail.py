"""Following growing log files: appended lines, partial lines, truncation and rotation."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from corrtrace.alerts.cli import alerts
from corrtrace.alerts.tail import follow


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_follow_appends_partial_lines_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("one\n")
    seen: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=([str(path)], seen.append, stop), kwargs={"interval": 0.01})
    thread.start()
    try:
        _wait(lambda: seen == ["one"])
        with path.open("a") as fh:
            fh.write("two\nthr")
            fh.flush()
            _wait(lambda: seen == ["one", "two"])
            fh.write("ee\n")
        _wait(lambda: seen == ["one", "two", "three"])
        os.rename(path, tmp_path / "app.log.1")
        path.write_text("four\n")
        _wait(lambda: seen[-1:] == ["four"])
        path.write_text("")  # truncation
        with path.open("a") as fh:
            fh.write("five\n")
        _wait(lambda: seen[-1:] == ["five"])
    finally:
        stop.set()
        thread.join(timeout=5)
    assert seen == ["one", "two", "three", "four", "five"]


def test_evaluate_follow_stops_after_duration(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text('{"message": "x", "event": {"outcome": "failure"}, "correlation_id": "f-1"}\n')
    started = time.monotonic()
    result = CliRunner().invoke(alerts, ["evaluate", str(path), "--follow", "--duration", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 5
    result = CliRunner().invoke(alerts, ["evaluate", "--follow"])
    assert result.exit_code == 2


@contextlib.contextmanager
def _following(path: Path, **options: Any) -> Iterator[list[str]]:
    """``follow(path)`` in a thread for the ``with`` block; yields the lines seen so far."""
    seen: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=([str(path)], seen.append, stop), kwargs=options)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=5)


def test_lines_written_just_before_a_rotation_are_not_lost(tmp_path: Path) -> None:
    """The collector's rule: a file renamed away is read to its end before it is let go (the old follower
    dropped what the renamed file got after its last poll)."""
    path = tmp_path / "app.log"
    path.write_text("one\n")
    with _following(path, interval=0.5) as seen:
        _wait(lambda: seen == ["one"])
        with path.open("a") as fh:
            fh.write("two\n")
        os.rename(path, tmp_path / "app.log.1")
        path.write_text("three\n")
        _wait(lambda: len(seen) >= 3)
    assert sorted(seen) == ["one", "three", "two"]  # each once (the two files are read side by side)


def test_following_from_the_end_skips_what_is_there_but_not_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("old\n")
    with _following(path, interval=0.01, from_start=False) as seen:
        time.sleep(0.1)
        with path.open("a") as fh:
            fh.write("new\n")
        _wait(lambda: seen == ["new"])
        os.rename(path, tmp_path / "app.log.1")
        path.write_text("rotated\n")
        _wait(lambda: seen == ["new", "rotated"])
