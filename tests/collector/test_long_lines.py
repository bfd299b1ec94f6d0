"""Lines longer than ``max_line_bytes`` are shipped in pieces, never dropped, and every piece carries the line's
correlation ID, so ``corrtrace search`` finds the whole line (collector/README.md, "Lines longer than
max_line_bytes")."""

from __future__ import annotations

from pathlib import Path

import orjson
from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.parsers import build_format
from corrtrace.collector.record import make_record
from corrtrace.collector.sources.tail import FileTail

from tests.faults.helpers import collect, search
from tests.files import finished

PIECE = 128 << 10


def _events(path: Path, fmt: str = "auto") -> list[dict[str, object]]:
    tail = FileTail([str(path)], Checkpoint(None), max_line_bytes=PIECE)
    parse = build_format(fmt)
    events = []
    try:
        while lines := tail.read(max_lines=7, max_bytes=64 << 10):  # reads of 64 KiB: a longer line is cut
            events += [make_record(*line, fmt=parse)[1] for line in lines]
    finally:
        tail.close()
    return events


def test_every_piece_of_a_long_json_line_carries_its_id(tmp_path: Path) -> None:
    long = orjson.dumps({"correlation_id": "big-1", "message": "x" * (PIECE * 2 + 5000)})
    path = tmp_path / "app.log"
    path.write_bytes(b'{"correlation_id":"before"}\n' + long + b'\n{"correlation_id":"after"}\n')
    events = _events(path)
    assert [e["correlation_id"] for e in events] == ["before", "big-1", "big-1", "big-1", "after"]
    pieces = events[1:4]
    assert [e["event"]["sequence"] for e in pieces] == [1, 2, 3]  # type: ignore[index]
    assert all(e["log"]["flags"] == ["piece"] for e in pieces)  # type: ignore[index]
    assert "".join(str(e["message"]) for e in pieces).encode() == long  # nothing lost
    assert "flags" not in events[0].get("log", {}) and "flags" not in events[4].get("log", {})  # type: ignore[operator]


def test_a_text_line_keeps_the_id_its_format_read_and_the_next_line_is_its_own(tmp_path: Path) -> None:
    head = b"09-02-2015 15:03:24 ui-svc ERROR [uuid-123] " + b"y" * (PIECE + 10)
    path = tmp_path / "app.log"
    path.write_bytes(head + b"\n09-02-2015 15:03:26 checkout-svc INFO [uuid-456] short\n")
    events = _events(path, "talk")
    assert [e["correlation_id"] for e in events] == ["uuid-123", "uuid-123", "uuid-456"]
    assert "flags" not in events[2].get("log", {})  # type: ignore[operator]


def test_a_piece_that_ends_exactly_at_the_line_end_leaves_the_next_line_alone(tmp_path: Path) -> None:
    long = b'{"correlation_id":"edge"}' + b" " * (PIECE - 25)  # exactly max_line_bytes before its newline
    assert len(long) == PIECE
    path = tmp_path / "app.log"
    path.write_bytes(long + b'\n{"correlation_id":"next"}\n')
    events = _events(path)
    assert [e["correlation_id"] for e in events][-1] == "next"
    assert "flags" not in events[-1].get("log", {})  # type: ignore[operator]


def test_search_finds_every_piece_of_a_40_mb_line(tmp_path: Path) -> None:
    """The default ``max_line_bytes`` (16 MiB): a 40 MB line used to become 3 wrapped pieces with no ID."""
    log = tmp_path / "app.log"
    with log.open("wb") as f:
        f.write(b'{"correlation_id":"huge-1","message":"' + b"z" * (40 << 20) + b'"}\n')
        f.write(b'{"correlation_id":"huge-2","message":"small"}\n')
    finished(log)
    data = tmp_path / "d"
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    found = search("huge-1", "--data-dir", str(data), "--json")
    assert found.returncode == 0, found.stderr
    pieces = orjson.loads(found.stdout)
    assert [p["event"]["sequence"] for p in pieces] == [1, 2, 3]
    assert sum(len(p["message"]) for p in pieces) == len(b'{"correlation_id":"huge-1","message":"') + (40 << 20) + 2


def test_standard_input_reads_a_long_line_in_pieces_with_its_id() -> None:
    """stdin read a line whole however long it was (``readline()`` without a bound: a 2 GB line without a
    newline was 2 GB of memory); it now comes in pieces of at most ``max_line_bytes``, as from a file."""
    import io
    import time

    from corrtrace.collector.sources.stdin import StreamSource

    long = orjson.dumps({"correlation_id": "piped-1", "message": "p" * (PIECE * 2 + 100)})
    stream = io.BytesIO(b'{"correlation_id":"first"}\n' + long + b'\n{"correlation_id":"last"}\n')
    source = StreamSource(stream, max_line_bytes=PIECE)
    deadline = time.monotonic() + 30
    lines = []
    while not source.at_eof():
        assert time.monotonic() < deadline
        lines += source.read(100, 1 << 30)
        time.sleep(0.01)
    assert max(len(line) for *_, line in lines) <= PIECE
    events = [make_record(*line)[1] for line in lines]
    assert [e["correlation_id"] for e in events] == ["first", "piped-1", "piped-1", "piped-1", "last"]
    assert [e.get("event", {}).get("sequence") for e in events] == [None, 1, 2, 3, None]  # type: ignore[union-attr]
    assert "".join(str(e["message"]) for e in events[1:4]).encode() == long
