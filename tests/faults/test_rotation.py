"""Issue 10 §3: with ``paths: [app.log]`` naming only the live file, a file rotated while the collector was
down (renamed, or copied and truncated) is found again in its directory and finished before the new app.log."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
