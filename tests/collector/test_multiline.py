"""Multiline records (collector/README.md, "Multiline records"): a real Python traceback and a captured Java
stack trace become one record each, found by the correlation id of their log line; checkpoints never land
inside a record (SIGKILL, rotation)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from click.testing import CliRunner
from corrtrace.collector import EmbeddedStore, Multiline, Pipeline, search_events
from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.sources.multiline import JavaRule, PatternRule, PythonRule, build_rules
from corrtrace.collector.sources.tail import FileTail

from corrtrace.cli import main
from tests.collector.helpers import line

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
RAISES = textwrap.dedent("""
    import logging, sys
    from corrtrace.context import set_correlation_id
    from corrtrace.logging import configure

    configure("orders", stream=sys.stderr)
    set_correlation_id(sys.argv[1])
    logging.getLogger("orders").info("charging card")

    def charge(order):
        try:
            return {}[order]
        except KeyError as exc:
            raise RuntimeError("payment failed for " + order) from exc

    charge("A-17")
""")


def _raise_into(path: Path, cid: str) -> None:
    """Run Python code that logs one JSON line and dies of an uncaught, chained exception; stderr -> ``path``."""
    with open(path, "ab") as err:
        proc = subprocess.run([sys.executable, "-c", RAISES, cid], stderr=err, timeout=60)
    assert proc.returncode == 1


def _collect(*args: str) -> None:
    result = CliRunner().invoke(main, ["collect", "--once", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _search(data: Path, cid: str) -> list[dict[str, Any]]:
    return search_events(cid, backend=str(data / "store"))


def _read_all(source: Any) -> list[tuple[str, int, int, bytes]]:
    out = []
    while True:
        got = source.read(10_000, 8 << 20, True)
        if not got:
            return out
        out += got


def test_a_real_python_traceback_is_one_record_with_the_requests_id(tmp_path: Path) -> None:
    log = tmp_path / "orders.log"
    _raise_into(log, "01J9ZK3Q8X-py-1")
    _raise_into(log, "01J9ZK3Q8X-py-2")
    data = tmp_path / "data"
    _collect("--data-dir", str(data), str(log))
    for cid in ("01J9ZK3Q8X-py-1", "01J9ZK3Q8X-py-2"):
        logged, traceback = _search(data, cid)
        assert logged["message"] == "charging card"
        text = traceback["message"]
        assert text.startswith("Traceback (most recent call last):") and text.endswith(
            "RuntimeError: payment failed for A-17"
        )
        assert "KeyError: 'A-17'" in text and "The above exception was the direct cause" in text
        assert text.count("Traceback (most recent call last):") == 2 and 'File "<string>", line' in text
        assert traceback["log"]["flags"] == ["multiline"]
        assert traceback["@timestamp"] == logged["@timestamp"]  # no time of its own: the log line's
    lines = log.read_bytes().count(b"\n")
    assert lines > 12  # every line of both tracebacks went into 2 records, next to the 2 JSON lines
    assert _count(data) == 4


def _count(data: Path) -> int:
    import sqlite3

    with sqlite3.connect(data / "store" / "events.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def test_a_java_stack_trace_under_a_logback_line_is_one_record_with_its_id(tmp_path: Path) -> None:
    log = tmp_path / "checkout.log"
    captured = (FIXTURES / "java-logback-stacktrace.log").read_bytes()
    log.write_bytes(line(1, cid="01J9ZK3Q8X-other") + captured + line(2, cid="01J9ZK3Q8X-other"))
    data = tmp_path / "data"
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "data_dir": str(data),
                    "sources": [{"path": str(log), "format": "logback", "service": "checkout-java"}],
                }
            }
        )
    )
    _collect("--config", str(config))
    (record,) = _search(data, "01J9ZK3Q8X-java-1")
    lines = record["message"].splitlines()
    assert lines[0] == "charge failed" and lines[1].startswith("java.lang.IllegalStateException: payment declined")
    assert lines[1:] == captured.decode().splitlines()[1:]  # every frame, Caused by:, ... 8 more
    assert record["service"]["name"] == "checkout-java" and record["log"]["level"] == "ERROR"
    assert record["log"]["flags"] == ["multiline"]
    assert len(_search(data, "01J9ZK3Q8X-other")) == 2 and _count(data) == 3


def test_a_user_rule_like_filebeats_pattern_negate_match(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("[2026-11-30 12:00:00] start\n  detail one\nmore detail\n[2026-11-30 12:00:01] next\nsingle\n")
    after = Multiline(FileTail([str(log)], Checkpoint(None)), build_rules({"pattern": r"^\[", "negate": True}))
    assert [r[3].decode() for r in _read_all(after)] == [
        "[2026-11-30 12:00:00] start\n  detail one\nmore detail",
        "[2026-11-30 12:00:01] next\nsingle",
    ]
    log.write_text("first \\\ncontinued \\\nends\nalone\n")
    before = Multiline(FileTail([str(log)], Checkpoint(None)), [PatternRule(r"\\$", negate=False, match="before")])
    assert [r[3].decode() for r in _read_all(before)] == ["first \\\ncontinued \\\nends", "alone"]


def test_json_lines_are_never_joined_and_a_record_is_capped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    frames = "".join(f'  File "x.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(40))
    log.write_bytes(
        b"Traceback (most recent call last):\n"
        + frames.encode()
        + b"ValueError: deep\n"
        + line(1)
        + b"    indented but after a JSON line\n"
        + line(2)
    )
    source = Multiline(FileTail([str(log)], Checkpoint(None)), [PythonRule(), JavaRule()], max_lines=10)
    got = _read_all(source)
    assert [len(r[3].splitlines()) for r in got] == [10, 1, 1, 1]
    capped = got[0][3]
    assert getattr(capped, "truncated", False) and source.truncated == 1
    assert got[0][2] == got[1][1]  # the capped record's end covers every line it swallowed
    assert got[2][3] == b"    indented but after a JSON line"


def test_the_last_record_of_a_quiet_file_is_flushed_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        line(1, cid="01J9ZK3Q8X-quiet") + b'Traceback (most recent call last):\n  File "a.py"\n'
        b"ZeroDivisionError: division by zero\n"
    )
    store = EmbeddedStore(tmp_path / "store")
    pipeline = Pipeline([], [store], data_dir=tmp_path / "data", flush_interval=0.05)
    pipeline.sources.append(Multiline(FileTail([str(log)], pipeline.checkpoint), flush_timeout=0.3))
    pipeline.start()
    try:
        deadline = time.monotonic() + 20
        while len(search_events("01J9ZK3Q8X-quiet", backend=store)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = search_events("01J9ZK3Q8X-quiet", backend=store)
        assert [e["message"].splitlines()[-1] for e in found] == ["line 1", "ZeroDivisionError: division by zero"]
        assert pipeline.checkpoint.offset(next(iter(pipeline.checkpoint.snapshot()))) == log.stat().st_size
    finally:
        pipeline.stop(drain_timeout=5)
        store.close()
        pipeline.close()


def _checkpoint_offset(path: Path) -> int:
    try:
        return max(int(v["offset"]) for v in orjson.loads(path.read_bytes())["sources"].values())
    except (FileNotFoundError, ValueError):
        return 0


def test_sigkill_inside_a_multiline_record_rereads_it_whole(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    first = line(1, cid="01J9ZK3Q8X-kill")
    head = b'Traceback (most recent call last):\n  File "svc.py", line 10, in handle\n    charge()\n'
    rest = b'  File "svc.py", line 20, in charge\n    1 / 0\nZeroDivisionError: division by zero\n'
    log.write_bytes(first + head)
    data = tmp_path / "data"
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "paths": [str(log)],
                    "data_dir": str(data),
                    "flush_interval": 0.05,
                    "multiline_flush_timeout": 120,
                }
            }
        )
    )
    with open(tmp_path / "collector.out", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=dict(os.environ),
        )
        try:
            deadline = time.monotonic() + 60
            while _checkpoint_offset(data / "checkpoint.json") < len(first) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # it has read the half record by now, and holds it
            assert _checkpoint_offset(data / "checkpoint.json") == len(first)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    with open(log, "ab") as fh:
        fh.write(rest + line(2, cid="01J9ZK3Q8X-kill"))
    _collect("--config", str(config))
    _, traceback, after = _search(data, "01J9ZK3Q8X-kill")
    assert traceback["message"] == (head + rest).decode().rstrip("\n")
    assert after["message"] == "line 2" and _count(data) == 3


def test_a_record_rotated_away_mid_way_is_finished_from_the_renamed_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    writer = open(log, "ab")  # noqa: SIM115 - the writing process keeps its descriptor across the rename
    writer.write(line(1, cid="01J9ZK3Q8X-rot") + b'Traceback (most recent call last):\n  File "svc.py", line 3\n')
    writer.flush()
    store = EmbeddedStore(tmp_path / "store")
    pipeline = Pipeline([], [store], data_dir=tmp_path / "data", flush_interval=0.05)
    pipeline.sources.append(Multiline(FileTail([str(log)], pipeline.checkpoint, scan_interval=0.05), flush_timeout=1.0))
    pipeline.start()
    try:
        deadline = time.monotonic() + 20
        while not search_events("01J9ZK3Q8X-rot", backend=store) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.rename(log, tmp_path / "app.log.1")
        writer.write(b"    work()\nOSError: disk on fire\n")
        writer.close()
        log.write_bytes(line(2, cid="01J9ZK3Q8X-rot2"))
        while len(search_events("01J9ZK3Q8X-rot", backend=store)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = search_events("01J9ZK3Q8X-rot", backend=store)
        assert found[1]["message"].splitlines() == [
            "Traceback (most recent call last):",
            '  File "svc.py", line 3',
            "    work()",
            "OSError: disk on fire",
        ]
        while not search_events("01J9ZK3Q8X-rot2", backend=store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(search_events("01J9ZK3Q8X-rot2", backend=store)) == 1
    finally:
        pipeline.stop(drain_timeout=5)
        store.close()
        pipeline.close()
