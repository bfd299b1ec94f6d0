"""Issue 10 §1: damaged state files in the data directory give one clear line naming the file and what to do,
never a traceback and never silently shipping nothing; an offset past the end of a truncated file means 0."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from corrtrace.collector.sources.tail import fingerprint_of

from tests.faults.helpers import collect, no_traceback, search, stored_docs
from tests.files import finished


def _log(tmp_path: Path, n: int = 5) -> Path:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b'{"correlation_id":"s-%d","labels":{"seq":%d}}\n' % (i, i) for i in range(n)))
    return log


def _fingerprint(path: Path) -> str:
    with open(path, "rb") as fh:
        fp = fingerprint_of(fh.fileno())
    assert fp is not None
    return fp


@pytest.mark.parametrize(
    "content",
    [
        b"[]",
        b"null",
        b"{not json",
        b'{"version":1,"sources":[]}',
        b'{"version":1,"sources":{"FP":{"offset":"abc"}}}',
        b'{"version":1,"sources":{"FP":{"offset":-5}}}',
        b'{"version":1,"sources":{"FP":7}}',
    ],
)
def test_a_corrupt_checkpoint_is_one_clear_line(tmp_path: Path, content: bytes) -> None:
    log = _log(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    checkpoint = data / "checkpoint.json"
    checkpoint.write_bytes(content.replace(b"FP", _fingerprint(log).encode()))
    result = collect("--once", "--data-dir", str(data), str(log))
    no_traceback(result)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert str(checkpoint) in line and "corrupt" in line and "move it away" in line
    assert not (data / "store").exists() or not stored_docs(data)  # nothing shipped past a state we cannot read
    checkpoint.unlink()  # what the line says to do
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    assert len(stored_docs(data)) == 5


def test_an_offset_past_the_end_of_a_truncated_file_reads_it_from_the_start(tmp_path: Path) -> None:
    log = _log(tmp_path, 3)
    data = tmp_path / "d"
    data.mkdir()
    (data / "checkpoint.json").write_bytes(
        orjson.dumps({"version": 1, "sources": {_fingerprint(log): {"offset": 10_000, "path": str(log), "updated": 0}}})
    )
    result = collect("--once", "--data-dir", str(data), str(log))
    assert result.returncode == 0, result.stderr
    assert [d["labels"]["seq"] for d in stored_docs(data)] == [0, 1, 2]
    assert "truncated" in result.stderr


def test_a_damaged_embedded_store_is_one_clear_line(tmp_path: Path) -> None:
    log = _log(tmp_path)
    data = tmp_path / "d"
    store = data / "store" / "events.sqlite3"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not an sqlite file" * 200)
    result = collect("--once", "--data-dir", str(data), str(log))
    no_traceback(result)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert str(store) in line and "damaged" in line and "move it away" in line
    found = search("s-1", "--data-dir", str(data))
    no_traceback(found)
    assert found.returncode == 2 and "damaged" in found.stderr
    assert not (data / "checkpoint.json").exists()  # nothing was skipped


def test_a_last_line_without_newline_is_not_read_twice(tmp_path: Path) -> None:
    """``--once`` ships a final line that has no newline in a file its writer is done with; its checkpoint is the
    file's end, not one past it (which would read as a truncated file and ship everything again)."""
    log = tmp_path / "app.log"
    log.write_bytes(b'{"correlation_id":"n-0","labels":{"seq":0}}\n{"correlation_id":"n-1","labels":{"seq":1}}')
    finished(log)
    data = tmp_path / "d"
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    again = collect("--once", "--data-dir", str(data), str(log))
    assert "0 lines read" in again.stderr and "truncated" not in again.stderr
    assert [d["labels"]["seq"] for d in stored_docs(data)] == [0, 1]


def test_a_line_still_being_written_is_left_whole_for_the_next_run(tmp_path: Path) -> None:
    """A one-shot run (cron) that meets a last line the service is still writing leaves it, says so, and the
    next run ships it whole with its correlation ID, instead of two ID-less pieces."""
    log = tmp_path / "app.log"
    log.write_bytes(b'{"correlation_id":"w-0","labels":{"seq":0}}\n{"correlation_id":"w-1","lab')
    data = tmp_path / "d"
    first = collect("--once", "--data-dir", str(data), str(log))
    no_traceback(first)
    assert first.returncode == 0 and "left for the next run" in first.stderr
    assert [d["correlation_id"] for d in stored_docs(data)] == ["w-0"]
    with log.open("ab") as f:
        f.write(b'els":{"seq":1}}\n')
    second = collect("--once", "--data-dir", str(data), str(log))
    assert second.returncode == 0 and "left for the next run" not in second.stderr
    assert [(d["correlation_id"], d["labels"]["seq"]) for d in stored_docs(data)] == [("w-0", 0), ("w-1", 1)]


def test_one_collector_per_data_dir_and_a_killed_one_lets_go(tmp_path: Path) -> None:
    """A second collector on the same data_dir (cron runs that overlap, two services pointed at one directory)
    shared the checkpoint and shipped every line twice (CloudWatch keeps both). It now stops at once with one
    line naming the first one's pid; the lock goes with the first process, SIGKILL included."""
    import signal
    import subprocess
    import sys
    import time

    log = _log(tmp_path, 5)
    data = tmp_path / "d"
    output = tmp_path / "first.out"
    first = subprocess.Popen(
        [sys.executable, "-m", "corrtrace.cli", "collect", "--data-dir", str(data), str(log)],
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (data / "collector.lock").exists() or not (data / "collector.lock").read_text():
            assert time.monotonic() < deadline and first.poll() is None, output.read_text()[-2000:]
            time.sleep(0.05)
        second = collect("--once", "--data-dir", str(data), str(log))
        no_traceback(second)
        assert second.returncode == 2
        assert f"another collector (pid {first.pid}) uses data_dir {data}" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    again = collect("--once", "--data-dir", str(data), str(log))
    assert again.returncode == 0, again.stderr
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0  # released after each run too


def test_a_store_damaged_while_in_use_is_one_clear_line(tmp_path: Path) -> None:
    log = _log(tmp_path, 2000)
    data = tmp_path / "d"
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    store = data / "store" / "events.sqlite3"
    with open(store, "r+b") as fh:  # scribble over every page but the first (the header stays readable)
        fh.seek(4096)
        fh.write(b"\xff" * (store.stat().st_size - 4096))
    with open(log, "ab") as fh:
        fh.write(b'{"correlation_id":"s-late","labels":{"seq":2000}}\n')
    result = collect("--once", "--data-dir", str(data), str(log))
    no_traceback(result)
    assert result.returncode == 1
    assert f"{store}: the embedded store is damaged" in result.stderr and "Traceback" not in result.stderr
