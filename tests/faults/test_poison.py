"""Issue 10 §1: one bad line never halts shipping. Unreadable timestamps are replaced and flagged, a line with a
lone surrogate keeps its correlation id, and a record a sink cannot encode (or refuses) is dead-lettered with
its file and offset while the checkpoint moves past it; ``collect --once`` ends with one summary line."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from corrtrace.collector import ElasticsearchSink, EmbeddedStore, Pipeline, Record
from corrtrace.collector.pipeline import Batch
from corrtrace.collector.retry import DeadLetters

from tests.collector.esutil import stored
from tests.faults.helpers import collect, dead_letters, no_traceback, search, stored_docs

TIMESTAMP_FAILURE_TAG = "_dateparsefailure"  # documented in collector/README.md
GOOD = b'{"correlation_id":"a","labels":{"seq":0}}\n'


STAMPS = [
    b"1e20",
    b"-1e19",
    b"1.5e300",
    b'"not a date"',
    b'"2026-13-45T99:00:00Z"',
    b"1e400",
    b"NaN",
    b"null",
    b"true",
    b'{"when":"now"}',
]


def test_an_unreadable_timestamp_is_replaced_flagged_and_kept(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        GOOD
        + b"".join(
            b'{"@timestamp":%s,"correlation_id":"b%d","labels":{"seq":%d}}\n' % (s, i, i + 1)
            for i, s in enumerate(STAMPS)
        )
    )
    data = tmp_path / "d"
    result = collect("--once", "--data-dir", str(data), str(log))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert f"{len(STAMPS) + 1} lines read, {len(STAMPS) + 1} stored, 0 dead-lettered" in result.stderr
    docs = stored_docs(data)
    assert [d["correlation_id"] for d in docs] == ["a"] + [f"b{i}" for i in range(len(STAMPS))]
    assert "tags" not in docs[0] and "event" not in docs[0]  # a good line is stored as it was
    for doc, line in zip(docs[1:], log.read_text().splitlines()[1:], strict=True):
        assert TIMESTAMP_FAILURE_TAG in doc["tags"]
        assert doc["event"]["original"] == line  # the line as read, its timestamp included
        assert doc["@timestamp"].endswith("Z")  # the ingest time, readable
    again = collect("--once", "--data-dir", str(data), str(log))
    assert again.returncode == 0 and "0 lines read" in again.stderr  # the checkpoint moved past every line


def test_the_same_timestamps_reach_elasticsearch(tmp_path: Path, es: Any, es_url: str, index_prefix: str) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        b"".join(
            b'{"@timestamp":%s,"correlation_id":"ts-%d","labels":{"seq":%d}}\n' % (s, i, i)
            for i, s in enumerate([b"1e20", b"-1e19", b"1.5e300", b'"2026-11-30T10:00:00.000Z"'])
        )
    )
    data = tmp_path / "d"
    result = collect(
        "--once",
        "--data-dir",
        str(data),
        "--sink",
        "elasticsearch",
        str(log),
        CORRTRACE_COLLECTOR_ES_URL=es_url,
        CORRTRACE_COLLECTOR_INDEX_PREFIX=index_prefix,
    )
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert sorted(seq for _, seq in stored(es, index_prefix)) == [0, 1, 2, 3]
    hits = es.search(index=f"{index_prefix}-*", query={"term": {"tags": TIMESTAMP_FAILURE_TAG}})["hits"]["hits"]
    assert len(hits) == 3  # a user finds the replaced timestamps by the tag


def test_a_lone_surrogate_keeps_the_correlation_id(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b'{"correlation_id":"sur-1","message":"bad \\ud800 text","labels":{"seq":0}}\n')
    data = tmp_path / "d"
    assert collect("--once", "--data-dir", str(data), str(log)).returncode == 0
    found = search("sur-1", "--data-dir", str(data), "--json")
    events = orjson.loads(found.stdout)
    assert len(events) == 1 and events[0]["message"] == "bad \ufffd text"
    assert "\\ud800" in events[0]["event"]["original"]  # the line as it was read


def _record(offset: int, ts: int, cid: str) -> Record:
    raw = orjson.dumps({"correlation_id": cid, "labels": {"seq": offset}})
    return Record("src", offset, offset + len(raw) + 1, raw, ts, cid, None, None)


@pytest.mark.parametrize("sink_name", ["embedded", "elasticsearch"])
def test_a_record_a_sink_cannot_encode_is_dead_lettered_and_shipping_goes_on(
    tmp_path: Path, sink_name: str, request: pytest.FixtureRequest
) -> None:
    """Records built past the parser (an int SQLite cannot hold, a date the platform cannot format: "[Errno 75]")
    go to the dead-letter file with the sink's reason; the rest of the batch is stored, the offsets commit."""
    if sink_name == "embedded":
        sink: Any = EmbeddedStore(tmp_path / "store")
    else:
        es = request.getfixturevalue("es")
        sink = ElasticsearchSink(es, prefix=request.getfixturevalue("index_prefix"))
    dead = DeadLetters(tmp_path / "dead.jsonl")
    pipeline = Pipeline([], [sink], data_dir=tmp_path / "data", once=True, dead_letters=dead)
    records = [
        _record(0, 1_700_000_000_000, "ok-0"),
        _record(100, 10**20, "bad-1"),
        _record(200, -(10**20), "bad-2"),
        _record(300, int(1.5e300), "bad-3"),
        _record(400, 1_700_000_000_001, "ok-4"),
    ]
    dead.sources["src"] = "/var/log/app.log"
    assert pipeline.queue.put(Batch(records, {"src": 500}), threading.Event())
    stats = pipeline.run()
    assert stats.shipped == 5 and stats.dead_lettered == 3 and stats.stored == 2
    entries = [orjson.loads(x) for x in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert [e["offset"] for e in entries] == [100, 200, 300]
    assert all(
        e["file"] == "/var/log/app.log" and e["sink"] == sink_name and "cannot encode" in e["reason"] for e in entries
    )
    assert [orjson.loads(e["event"])["correlation_id"] for e in entries] == ["bad-1", "bad-2", "bad-3"]
    assert pipeline.checkpoint.offset("src") == 500
    pipeline.close()
    sink.close()


def test_a_refused_line_is_dead_lettered_with_file_and_offset_and_summarised(
    tmp_path: Path, es: Any, es_url: str, index_prefix: str
) -> None:
    log = tmp_path / "app.log"
    first = b'{"correlation_id":"m-0","http":{"response":{"status_code":200}},"labels":{"seq":0}}\n'
    bad = b'{"correlation_id":"m-1","http":{"response":{"status_code":"two hundred"}},"labels":{"seq":1}}\n'
    log.write_bytes(first + bad + b'{"correlation_id":"m-2","labels":{"seq":2}}\n')
    data = tmp_path / "d"
    env = {"CORRTRACE_COLLECTOR_ES_URL": es_url, "CORRTRACE_COLLECTOR_INDEX_PREFIX": index_prefix}
    result = collect("--once", "--data-dir", str(data), "--sink", "elasticsearch", str(log), **env)
    assert result.returncode == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary == (
        f"corrtrace collect: 3 lines read, 2 stored, 1 dead-lettered (reasons in {data / 'dead-letters.jsonl'})"
    )
    (entry,) = dead_letters(data)
    assert entry["file"] == str(log) and entry["offset"] == len(first) and entry["status"] == 400
    assert entry["line"].encode() + b"\n" == bad and "status_code" in entry["reason"]
    assert orjson.loads(entry["event"])["correlation_id"] == "m-1"  # the document as shipped (ingest time added)
    as_json = collect(
        "--once", "--json", "--data-dir", str(tmp_path / "d2"), "--sink", "elasticsearch", str(log), **env
    )
    stats = orjson.loads(as_json.stdout)
    assert (stats["stored"], stats["dead_lettered"]) == (2, 1)  # ES already holds two: 409s count as stored
    assert stats["dead_letter_path"] == str(tmp_path / "d2" / "dead-letters.jsonl")
    assert "corrtrace collect:" not in as_json.stderr  # JSON instead of the human line
