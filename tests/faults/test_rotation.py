"""Issue 10 §3: with ``paths: [app.log]`` naming only the live file, a file rotated while the collector was
down (renamed, or copied and truncated) is found again in its directory and finished before the new app.log."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
from corrtrace.collector import Checkpoint, FileTail

from tests.collector.helpers import write_lines
from tests.faults.helpers import collect, stored_docs


def _seqs(data: Path) -> list[int]:
    return [int(d["labels"]["seq"]) for d in stored_docs(data)]


def test_renamed_while_down_is_finished_before_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    data = tmp_path / "d"
    write_lines(log, range(1000))
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    write_lines(log, range(1000, 1500))  # written after the collector stopped: unread
    os.rename(log, log.with_name("app.log.1"))  # logrotate while the collector is down
    write_lines(log, range(1500, 1800))
    result = collect("--once", "--data-dir", str(data), str(log))
    assert result.returncode == 0, result.stderr
    assert _seqs(data) == list(range(1800))  # nothing lost, and the old file's tail came first
    assert "rotated while the collector was down" in result.stderr
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    assert len(_seqs(data)) == 1800  # a further run adds nothing


def test_copied_and_truncated_while_down_is_finished_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    data = tmp_path / "d"
    write_lines(log, range(700))
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    write_lines(log, range(700, 900))
    shutil.copyfile(log, log.with_name("app.log-20261130"))  # copytruncate while the collector is down
    with open(log, "r+b") as fh:
        fh.truncate(0)
    write_lines(log, range(900, 1000))
    result = collect("--once", "--data-dir", str(data), str(log))
    assert result.returncode == 0, result.stderr
    assert _seqs(data) == list(range(1000))


def test_truncation_without_a_copy_loses_only_the_unread_lines(tmp_path: Path) -> None:
    """The one documented way to lose lines (collector README): ``> app.log`` while lines are unread."""
    log = tmp_path / "app.log"
    data = tmp_path / "d"
    write_lines(log, range(100))
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    write_lines(log, range(100, 150))
    with open(log, "r+b") as fh:
        fh.truncate(0)
    write_lines(log, range(150, 160))
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    assert _seqs(data) == list(range(100)) + list(range(150, 160))  # 100..149 are gone with the truncation


def test_two_rotations_while_down_are_both_caught_up(tmp_path: Path) -> None:
    """A file created and rotated away while the collector was down was never checkpointed: it is found
    because it changed after the collector first watched ``app.log`` and its head is unknown."""
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    data = tmp_path / "d"
    write_lines(log, range(1000))
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    write_lines(log, range(1000, 1200))
    os.rename(log, log.with_name("app.log.1"))
    write_lines(log, range(1200, 1500))  # a whole generation the collector never sees under this name
    os.rename(log, log.with_name("app.log.2"))
    write_lines(log, range(1500, 1600))
    log.with_name("app.log.3.gz").write_bytes(b"\x1f\x8b compressed, left alone")
    result = collect("--once", "--data-dir", str(data), str(log))
    assert result.returncode == 0, result.stderr
    assert sorted(_seqs(data)) == list(range(1600)) and len(_seqs(data)) == 1600
    assert _seqs(data)[-100:] == list(range(1500, 1600))  # the live file last


def test_copytruncate_while_running_with_only_the_live_file_named(tmp_path: Path) -> None:
    """The copy is not named by ``paths``: on truncation the tailer finds it by its head and finishes it."""
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    write_lines(log, range(1000))
    tail = FileTail([str(log)], Checkpoint(None), scan_interval=0)
    got = [orjson.loads(x[3])["labels"]["seq"] for x in tail.read(max_lines=500)]  # a reader behind the writer
    shutil.copyfile(log, log.with_name("app.log.1"))
    with open(log, "r+b") as fh:
        fh.truncate(0)
    write_lines(log, range(1000, 1100))
    while batch := tail.read(max_lines=300):
        got += [orjson.loads(x[3])["labels"]["seq"] for x in batch]
    tail.close()
    assert got == list(range(1100))  # the copy's unread half first, then the new content
