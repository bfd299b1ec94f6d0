"""Other stacks' ids are searchable: an id a stored line carries (``/``, ``+``, ``=``, quotes, ``*``,
``%``, non-ASCII) is found in every backend, compared as a value and never read as query syntax; an id that
cannot be (empty, longer than 1024, spaces or control characters) gets one clear line (collector/README.md,
"Where the data lives")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from corrtrace.alerts.patterns import compile_pattern
from corrtrace.collector import Backoff, CloudWatchSink, ElasticsearchSink, search_events, ship_files
from corrtrace.collector.sinks.cloudwatch import id_pattern, logs_client
from corrtrace.collector.sinks.elasticsearch import ensure_index_template

from corrtrace.cli import main

ODD_IDS = [
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",  # AWS X-Amzn-Trace-Id
    "105445aa7843bc8bf206b12000100000/1;o=1",  # Google Cloud's trace context
    "q1w2+e3r/t5==",  # base64
    'say"hi"',
    "back\\slash",
    "star*in*it",
    "%percent%",
    "*",
    "ünïcödé-ид",
    "{}[]$.@",
]
NEIGHBOURS = ["Root=1-5759e988", "q1w2", "say", "star", "percent", "x"]  # prefixes and parts: must not match


def _write(path: Path) -> None:
    lines = [{"correlation_id": cid, "message": f"line {i}", "labels": {"seq": i}} for i, cid in enumerate(ODD_IDS)]
    lines += [{"correlation_id": cid, "message": "neighbour"} for cid in NEIGHBOURS]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))


def _found(events: list[dict[str, Any]]) -> list[int]:
    return [e["labels"]["seq"] for e in events]


def test_odd_ids_are_found_in_the_embedded_store_from_the_command_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _write(log)
    runner = CliRunner()
    assert runner.invoke(main, ["collect", "--once", "--data-dir", str(tmp_path / "d"), str(log)]).exit_code == 0
    for i, cid in enumerate(ODD_IDS):
        result = runner.invoke(main, ["search", "--data-dir", str(tmp_path / "d"), "--json", "--", cid])
        assert result.exit_code == 0, (cid, result.output)
        assert _found(orjson.loads(result.stdout)) == [i], cid


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "1 to 1024 characters"),
        ("a" * 1025, "1 to 1024 characters"),
        ("a\nb", "no spaces or control characters"),
        ("\x1b[31mred", "no spaces or control characters"),
        ("two words", "no spaces or control characters"),
    ],
)
def test_an_id_no_line_can_carry_is_one_clear_line(tmp_path: Path, value: str, reason: str) -> None:
    result = CliRunner().invoke(main, ["search", "--data-dir", str(tmp_path / "d"), "--", value])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "\x1b" not in lines[0] and len(lines[0]) < 200
    with pytest.raises(ValueError, match=reason):
        search_events(value, backend=str(tmp_path / "store.sqlite3"))


def test_odd_ids_are_found_in_elasticsearch(tmp_path: Path, es: Any, index_prefix: str) -> None:
    log = tmp_path / "app.log"
    _write(log)
    sink = ElasticsearchSink(es, prefix=index_prefix)
    ship_files([log], [sink])
    es.indices.refresh(index=f"{index_prefix}-*")
    for i, cid in enumerate(ODD_IDS):
        assert _found(search_events(cid, backend=sink)) == [i], cid


def test_odd_ids_get_a_cloudwatch_pattern_that_finds_them(tmp_path: Path, moto_url: str) -> None:
    """moto ignores filter patterns, so the pattern is run by corrtrace's own engine (CloudWatch's grammar and
    semantics, alerts/README.md): it parses and matches the id's event; search then keeps exactly that event."""
    for cid in ODD_IDS:
        pattern = compile_pattern(id_pattern(cid))
        assert pattern.matches(orjson.dumps({"correlation_id": cid}).decode()), (cid, id_pattern(cid))
    log = tmp_path / "app.log"
    _write(log)
    sink = CloudWatchSink(logs_client(moto_url), backoff=Backoff(0.02, 0.3))
    ship_files([log], [sink])
    for i, cid in enumerate(ODD_IDS):
        assert _found(search_events(cid, backend=sink)) == [i], cid


def test_documents_another_shipper_stored_are_found_whatever_their_ids(es: Any, index_prefix: str) -> None:
    """Search orders one source's lines by the offset at the end of corrtrace's ids; another shipper's ``_id``
    may end in anything (``-²`` is ``isdigit()`` but no ``int()``, which made the search raise)."""
    ensure_index_template(es, index_prefix)  # what corrtrace collect installs: correlation_id is a keyword
    index = f"{index_prefix}-foreign"
    odd_ids = ["filebeat-\u00b2", "vector-\u0661\u0662", "fluent-12", "plain"]
    for seq, doc_id in enumerate(odd_ids):
        doc = {"@timestamp": "2026-12-01T12:00:00.000Z", "correlation_id": "foreign-1", "labels": {"seq": seq}}
        es.index(index=index, id=doc_id, document=doc)
    es.indices.refresh(index=index)
    found = search_events("foreign-1", backend=ElasticsearchSink(es, prefix=index_prefix))
    assert sorted(_found(found)) == [0, 1, 2, 3]
