"""Tailing: rotation by rename and by truncation (copytruncate), checkpoints, odd lines. Nothing is lost."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from corrtrace.collector import EmbeddedStore, Pipeline, ship_files
from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.sources.tail import FileTail

from tests.collector.helpers import line, write_lines
from tests.files import finished


def _all_seqs(store: EmbeddedStore) -> list[int]:
    import orjson

    rows = store._db.execute("SELECT doc FROM events ORDER BY seq").fetchall()
    return [orjson.loads(r[0])["labels"]["seq"] for r in rows]


def _writer(path: Path, total: int, rotate: str, every: int, stop: threading.Event) -> None:
    """Write ``total`` lines, rotating every ``every`` lines (logrotate-style rename, or copytruncate)."""
    n = 0
    generation = 0
    fh = open(path, "ab")  # noqa: SIM115
    while n < total:
        fh.write(line(n))
        fh.flush()
        n += 1
        if n % 50 == 0:
            time.sleep(0.002)
        if n % every == 0 and n < total:
            generation += 1
            if rotate == "rename":
                fh.close()
                os.rename(path, path.with_name(f"{path.name}.{generation}"))
                fh = open(path, "ab")  # noqa: SIM115
            else:  # copytruncate: copy, then truncate the live file in place
                shutil.copyfile(path, path.with_name(f"{path.name}.{generation}"))
                fh.truncate(0)
                fh.seek(0)
    fh.close()
    stop.set()


def _run_with_rotation(tmp_path: Path, rotate: str) -> tuple[list[int], FileTail]:
    log_path = tmp_path / "logs" / "app.log"
    log_path.parent.mkdir()
    log_path.touch()
    store = EmbeddedStore(tmp_path / "store")
    pipeline = Pipeline([], [store], data_dir=tmp_path / "data", flush_interval=0.05, idle_sleep=0.01)
    tail = FileTail([str(tmp_path / "logs" / "app.log*")], pipeline.checkpoint, scan_interval=0.02, close_inactive=0.5)
    pipeline.sources.append(tail)
    pipeline.start()
    done = threading.Event()
    writer = threading.Thread(target=_writer, args=(log_path, 6000, rotate, 1000, done))
    writer.start()
    writer.join()
    deadline = time.monotonic() + 20
    while store.count() < 6000 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    pipeline.stop()
    return _all_seqs(store), tail


def test_rotation_by_rename_loses_nothing(tmp_path: Path) -> None:
    seqs, _ = _run_with_rotation(tmp_path, "rename")
    assert sorted(seqs) == list(range(6000))
    assert len(list((tmp_path / "logs").iterdir())) == 6  # five renamed generations + the live file


def test_rotation_by_copytruncate_loses_nothing(tmp_path: Path) -> None:
    seqs, tail = _run_with_rotation(tmp_path, "copytruncate")
    assert sorted(seqs) == list(range(6000))
    assert tail.truncations >= 1


def test_checkpoint_resumes_and_reshipping_adds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(0, 500))
    store = EmbeddedStore(tmp_path / "store")
    ship_files([path], [store], data_dir=tmp_path / "data")
    write_lines(path, range(500, 800))
    stats = ship_files([path], [store], data_dir=tmp_path / "data")
    assert stats.read == 300  # only the new lines were read again
    assert sorted(_all_seqs(store)) == list(range(800))
    checkpoint = Checkpoint(tmp_path / "data" / "checkpoint.json").snapshot()
    assert [entry["offset"] for entry in checkpoint.values()] == [path.stat().st_size]


def test_non_json_lines_are_wrapped_never_dropped(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(line(1) + b"plain text \xff line\n[1, 2]\n\n" + line(2) + b"last line without newline")
    finished(path)
    store = EmbeddedStore(tmp_path / "store")
    ship_files([path], [store])
    import orjson

    docs = [orjson.loads(r[0]) for r in store._db.execute("SELECT doc FROM events ORDER BY seq").fetchall()]
    assert len(docs) == 5
    assert docs[1]["log"]["original"] == "plain text \ufffd line"
    assert docs[2]["message"] == "[1, 2]"
    assert docs[4]["message"] == "last line without newline"
    assert all("@timestamp" in d for d in docs)


def _expected_lines(data: bytes) -> list[tuple[int, int, bytes]]:
    """The tailer's line rule, written plainly: every newline-ended line at its offsets, a trailing CR cut,
    blank (white-space only) lines skipped."""
    out, pos = [], 0
    for raw in data.split(b"\n")[:-1]:
        text = raw[:-1] if raw.endswith(b"\r") else raw
        if text.strip():
            out.append((pos, pos + len(raw) + 1, text))
        pos += len(raw) + 1
    return out


def test_every_line_keeps_its_offsets_however_the_reads_split(tmp_path: Path) -> None:
    plain = b"".join(line(i) for i in range(40))  # read by splitting a whole read at once
    mixed = b"\n \t\n" + line(40).replace(b"\n", b"\r\n") + b"\x0b\r\n  indented text\n\r\n\n" + line(41)
    crlf = plain.replace(b"\n", b"\r\n")
    blank = plain + b"\n\tindented\n" + plain  # an empty line
    spaces = plain + b" \t \n  indented\n" + plain  # white space only, and a line that starts with it
    cases = [
        ("plain", plain, 7),
        ("crlf", crlf, 6),
        ("blank", blank, 9),
        ("spaces", spaces, 40),
        ("mixed", mixed + plain, 5),
        ("late", plain + mixed, 100),
    ]
    for name, data, max_lines in cases:
        path = tmp_path / f"{name}.log"
        path.write_bytes(data + b'{"partial": "no newline yet"')
        tail = FileTail([str(path)], Checkpoint(None), scan_interval=0)
        got = []
        while batch := tail.read(max_lines):
            assert len(batch) <= max_lines
            got += [(start, end, text) for _, start, end, text in batch]
        tail.close()
        assert got == _expected_lines(data), name


def test_same_content_after_rename_keeps_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(10))
    checkpoint = Checkpoint(tmp_path / "cp.json")
    tail = FileTail([str(tmp_path / "*.log*")], checkpoint, scan_interval=0)
    first = tail.read()
    os.rename(path, tmp_path / "a.log.1")
    write_lines(tmp_path / "a.log.1", range(10, 12))
    second = tail.read()
    assert [r[1] for r in second] == [r[2] for r in first[-1:]] + [second[1][1]]
    assert {r[0] for r in first} == {r[0] for r in second}  # same source identity: ids stay stable
    tail.close()


def test_subscribers_receive_every_parsed_event(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(100))
    path.open("ab").write(b"oops\n")
    seen: list[dict[str, object]] = []

    def broken(event: dict[str, object]) -> None:
        raise RuntimeError("a failing subscriber never stops shipping")

    store = EmbeddedStore(tmp_path / "store")
    stats = ship_files([path], [store], subscribers=[seen.append, broken])
    assert len(seen) == 101 and seen[-1]["message"] == "oops" and seen[0]["labels"] == {"seq": 0}
    assert stats.subscriber_errors == 101 and store.count() == 101


def test_a_symlink_loop_a_fifo_or_a_directory_matched_by_the_glob_skips_only_itself(tmp_path: Path) -> None:
    """One odd entry among the files (``ln -s loop.log loop.log``, a FIFO, a directory, a device) used to end
    the whole collector with "Too many levels of symbolic links"; now it is skipped with one warning."""
    from tests.faults.helpers import collect, no_traceback

    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "a.log", range(3))
    (logs / "loop.log").symlink_to("loop.log")
    os.mkfifo(logs / "pipe.log")
    (logs / "dir.log").mkdir()
    (logs / "zero.log").symlink_to("/dev/zero")
    write_lines(logs / "z.log", range(3, 5))
    result = collect("--once", "--data-dir", str(tmp_path / "d"), str(logs / "*.log"))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "5 lines read, 5 stored" in result.stderr
    assert result.stderr.count("cannot read") == 1 and "loop.log (Too many levels of symbolic links)" in result.stderr
    store = EmbeddedStore(tmp_path / "d" / "store")
    assert sorted(_all_seqs(store)) == [0, 1, 2, 3, 4]  # files are read round-robin
    store.close()
