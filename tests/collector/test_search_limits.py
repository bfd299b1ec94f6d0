"""A search returns at most ``limit`` lines (10,000 by default: what Elasticsearch returns at once) and says when
more lines match, in every backend: ``corrtrace search`` used to show the first 10,000 lines of a bigger flow as
if they were all of it (collector/README.md, "Where the data lives")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from corrtrace.collector import Backoff, CloudWatchSink, ElasticsearchSink, EmbeddedStore, search_events, ship_files
from corrtrace.collector.sinks import cloudwatch
from corrtrace.collector.sinks.cloudwatch import logs_client

from corrtrace.cli import main
from tests.collector.helpers import BASE_MS, iso


def _write(path: Path, n: int, cid: str = "many-1") -> Path:
    lines = (
        orjson.dumps(
            {"correlation_id": cid, "message": f"line {i}", "labels": {"seq": i}, "@timestamp": iso(BASE_MS + i)}
        )
        for i in range(n)
    )
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _check(sink: Any) -> None:
    """8 lines stored: a limit of 5 gives the first 5 and says there are more; 8 or more gives all 8."""
    cut = search_events("many-1", backend=sink, limit=5)
    assert [e["labels"]["seq"] for e in cut] == [0, 1, 2, 3, 4] and not cut.complete
    for limit in (8, 9):
        whole = search_events("many-1", backend=sink, limit=limit)
        assert [e["labels"]["seq"] for e in whole] == list(range(8)) and whole.complete


def test_embedded_store(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    ship_files([_write(tmp_path / "app.log", 8)], [store])
    _check(store)


def test_elasticsearch(tmp_path: Path, es: Any, index_prefix: str) -> None:
    sink = ElasticsearchSink(es, prefix=index_prefix)
    ship_files([_write(tmp_path / "app.log", 8)], [sink])
    es.indices.refresh(index=f"{index_prefix}-*")
    _check(sink)


def test_a_level_filter_counts_in_the_limit_on_elasticsearch(tmp_path: Path, es: Any, index_prefix: str) -> None:
    """``--level ERROR`` on a flow longer than the limit: the errors after the first lines are found (the level
    was checked on the first lines only, after the engine had cut them)."""
    log = tmp_path / "app.log"
    lines = [{"correlation_id": "lv-1", "log": {"level": "INFO"}, "labels": {"seq": i}} for i in range(8)]
    lines += [
        {"correlation_id": "lv-1", "log": {"level": level}, "labels": {"seq": 8 + i}}
        for i, level in enumerate(["ERROR", "error"])
    ]
    log.write_bytes(
        b"".join(orjson.dumps({**x, "@timestamp": iso(BASE_MS + x["labels"]["seq"])}) + b"\n" for x in lines)
    )
    sink = ElasticsearchSink(es, prefix=index_prefix)
    ship_files([log], [sink])
    es.indices.refresh(index=f"{index_prefix}-*")
    errors = search_events("lv-1", backend=sink, level="error", limit=5)
    assert [e["labels"]["seq"] for e in errors] == [8, 9] and errors.complete


def test_cloudwatch_and_its_bounded_scan(tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = CloudWatchSink(logs_client(moto_url), backoff=Backoff(0.02, 0.3))
    ship_files([_write(tmp_path / "app.log", 8)], [sink])
    _check(sink)
    monkeypatch.setattr(cloudwatch, "SEARCH_PAGE", 2)
    monkeypatch.setattr(cloudwatch, "SEARCH_SCAN_MAX", 4)  # a search stops reading after 4 events: more match
    bounded = search_events("many-1", backend=sink, limit=100)
    assert [e["labels"]["seq"] for e in bounded] == [0, 1, 2, 3] and not bounded.complete


def test_the_command_line_says_when_a_flow_has_more_lines_than_it_shows(tmp_path: Path) -> None:
    log = _write(tmp_path / "app.log", 10_050)
    runner = CliRunner()
    assert runner.invoke(main, ["collect", "--once", "--data-dir", str(tmp_path / "d"), str(log)]).exit_code == 0
    result = runner.invoke(main, ["search", "many-1", "--data-dir", str(tmp_path / "d"), "--json"])
    assert result.exit_code == 0
    assert len(orjson.loads(result.stdout)) == 10_000
    assert "showing the first 10,000 lines of many-1; more lines match" in result.stderr
    whole = runner.invoke(
        main, ["search", "many-1", "--data-dir", str(tmp_path / "d"), "--json", "--since", iso(BASE_MS + 60)]
    )
    assert len(orjson.loads(whole.stdout)) == 9_990 and "more lines match" not in whole.stderr
