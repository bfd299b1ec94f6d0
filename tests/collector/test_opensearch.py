"""The collector's OpenSearch path (opensearch-py behind the sink's small interface) against a REAL OpenSearch
2.19 node (scripts/opensearch/os.sh): index template, idempotent re-shipping, a lost bulk reply retried without
duplicates, item 429s, search sorted by ``@timestamp``, and ``corrtrace collect``/``search`` with that backend."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from click.testing import CliRunner
from corrtrace.collector import (
    Backoff,
    ElasticsearchSink,
    EmbeddedStore,
    connect,
    ensure_index_template,
    search_events,
    ship_files,
)

from corrtrace.cli import main
from tests.collector.esutil import reject_some_items
from tests.collector.faultproxy import FaultProxy
from tests.collector.helpers import BASE_MS, line, seqs_of

FAST = Backoff(0.02, 0.3)
TOTAL = 400
SERVICES = ["gateway", "orders", "payment", "shipping"]


@pytest.fixture(scope="session")
def opensearch(os_url: str) -> Iterator[Any]:
    client = connect(os_url, flavor="opensearch", timeout=60.0)
    yield client
    client.close()


@pytest.fixture()
def os_prefix(opensearch: Any) -> Iterator[str]:
    """A unique index prefix; its indices and index template are deleted after the test."""
    prefix = f"t-os-{uuid.uuid4().hex[:10]}"
    yield prefix
    opensearch.indices.delete(index=f"{prefix}-*", params={"expand_wildcards": "all", "ignore_unavailable": "true"})
    opensearch.indices.delete_index_template(name=prefix, ignore=404)


def _timestamp(seq: int) -> int:
    """File order is not time order (as when services' clocks and buffers interleave): search must sort."""
    return BASE_MS + (seq * 37) % TOTAL * 10


def _write(path: Path) -> list[dict[str, Any]]:
    """TOTAL lines of 20 interleaved requests across four services; returns the events as written."""
    events = []
    with open(path, "wb") as fh:
        for seq in range(TOTAL):
            raw = line(seq, cid=f"req-{seq % 20}", service=SERVICES[(seq // 20) % 4], ts=_timestamp(seq))
            fh.write(raw)
            events.append(orjson.loads(raw))
    return events


def _stored(client: Any, prefix: str) -> Counter[int]:
    """How many times each ``labels.seq`` is stored (every document, not only the first page)."""
    from opensearchpy.helpers import scan

    client.indices.refresh(index=f"{prefix}-*")
    return Counter(
        int(hit["_source"]["labels"]["seq"])
        for hit in scan(
            client, index=f"{prefix}-*", query={"query": {"match_all": {}}}, size=1000, _source=["labels.seq"]
        )
    )


def _exactly_once(client: Any, prefix: str) -> None:
    counts = _stored(client, prefix)
    assert sum(counts.values()) == TOTAL, f"{sum(counts.values())} documents stored, expected {TOTAL}"
    assert set(counts) == set(range(TOTAL)) and max(counts.values()) == 1


def _expected(events: list[dict[str, Any]], cid: str, service: str | None = None) -> list[int]:
    mine = [e for e in events if e["correlation_id"] == cid and service in (None, e["service"]["name"])]
    return [e["labels"]["seq"] for e in sorted(mine, key=lambda e: (e["@timestamp"], e["labels"]["seq"]))]


def test_index_template_maps_correlation_id_as_keyword(opensearch: Any, os_prefix: str, tmp_path: Path) -> None:
    ensure_index_template(opensearch, prefix=os_prefix)
    template = opensearch.indices.get_index_template(name=os_prefix)["index_templates"][0]["index_template"]
    assert template["index_patterns"] == [f"{os_prefix}-*"]
    props = template["template"]["mappings"]["properties"]
    assert props["correlation_id"]["type"] == "keyword"
    assert props["@timestamp"]["type"] == "date"
    path = tmp_path / "a.log"
    _write(path)
    ship_files([path], [ElasticsearchSink(opensearch, prefix=os_prefix)])
    opensearch.indices.refresh(index=f"{os_prefix}-*")
    index = next(iter(opensearch.indices.get_mapping(index=f"{os_prefix}-*").values()))["mappings"]["properties"]
    assert index["correlation_id"]["type"] == "keyword"  # the real index took the template's mapping
    assert index["service"]["properties"]["name"]["type"] == "keyword"
    assert index["event"]["properties"]["duration"]["type"] == "long"
    found = opensearch.search(index=f"{os_prefix}-*", body={"query": {"term": {"correlation_id": "req-3"}}})
    assert found["hits"]["total"]["value"] == TOTAL // 20  # keyword: exact term match on the whole id


def test_reshipping_and_a_checkpoint_reset_never_duplicate(opensearch: Any, os_prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    _write(path)
    sink = ElasticsearchSink(opensearch, prefix=os_prefix)
    ship_files([path], [sink])
    ship_files([path], [sink])  # no checkpoint: everything is sent again, ids are deterministic
    assert sink.stats.delivered == TOTAL and sink.stats.duplicates == TOTAL
    data = tmp_path / "data"
    again = ElasticsearchSink(opensearch, prefix=os_prefix)
    ship_files([path], [again], data_dir=data)
    assert again.stats.requests == 1 and again.stats.duplicates == TOTAL
    ship_files([path], [again], data_dir=data)  # the checkpoint says it is all acknowledged: nothing sent
    assert again.stats.requests == 1
    shutil.rmtree(data)  # checkpoint reset: re-sent, and every item is a 409
    ship_files([path], [again], data_dir=data)
    assert again.stats.requests == 2 and again.stats.duplicates == 2 * TOTAL and again.stats.delivered == 0
    _exactly_once(opensearch, os_prefix)


def _lose_first_bulk_reply(
    proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes] | None:
    """The bulk reaches OpenSearch and is stored, but the client gets a 502 instead of the reply."""
    if "_bulk" not in path or proxy.state.get("lost"):
        return None
    proxy.forward(method, path, headers, body)
    proxy.state["lost"] = True
    return 502, {"Content-Type": "text/plain"}, b"bad gateway (reply lost by the test proxy)"


def test_a_lost_bulk_reply_is_retried_without_duplicates(
    opensearch: Any, os_url: str, os_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "a.log"
    _write(path)
    ensure_index_template(opensearch, prefix=os_prefix)
    with FaultProxy(os_url, _lose_first_bulk_reply) as proxy:
        sink = ElasticsearchSink(connect(proxy.url, flavor="opensearch"), prefix=os_prefix, backoff=FAST)
        ship_files([path], [sink])
    assert proxy.state["lost"] and sink.stats.failures == 1 and sink.stats.requests == 2  # the bulk, sent twice
    assert sink.stats.duplicates == TOTAL and sink.stats.delivered == 0  # the retry found every id stored
    _exactly_once(opensearch, os_prefix)


def _reject_some_items_as_opensearch(every: int, times: int) -> Any:
    """esutil's item-429 hook, answering with OpenSearch's content type (opensearch-py refuses Elastic's)."""
    hook = reject_some_items(every=every, times=times)

    def wrapped(
        proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        answer = hook(proxy, method, path, headers, body)
        if answer is None:
            return None
        status, _, data = answer
        return status, {"Content-Type": "application/json; charset=UTF-8"}, data

    return wrapped


def test_item_429s_are_retried_alone(opensearch: Any, os_url: str, os_prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    _write(path)
    with FaultProxy(os_url, _reject_some_items_as_opensearch(every=4, times=2)) as proxy:
        sink = ElasticsearchSink(connect(proxy.url, flavor="opensearch"), prefix=os_prefix, backoff=FAST)
        ship_files([path], [sink], batch_max_events=150)
    assert proxy.state["injected"] > TOTAL // 8 and sink.stats.retried == proxy.state["injected"]
    assert sink.stats.delivered == TOTAL and sink.stats.duplicates == 0
    _exactly_once(opensearch, os_prefix)


def test_search_returns_exactly_one_requests_lines_sorted_by_timestamp(
    opensearch: Any, os_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "a.log"
    events = _write(path)
    store = EmbeddedStore(tmp_path / "store")
    ship_files([path], [ElasticsearchSink(opensearch, prefix=os_prefix), store])
    opensearch.indices.refresh(index=f"{os_prefix}-*")
    found = search_events("req-7", backend=opensearch, index_prefix=os_prefix)
    want = _expected(events, "req-7")
    assert len(want) == TOTAL // 20 and want != sorted(want)  # time order differs from file order
    assert seqs_of(found) == want
    assert {e["correlation_id"] for e in found} == {"req-7"}
    stamps = [e["@timestamp"] for e in found]
    assert stamps == sorted(stamps)
    assert found == search_events("req-7", backend=store)  # same answer as the embedded store
    only = search_events("req-7", backend=opensearch, index_prefix=os_prefix, service="payment")
    assert only and seqs_of(only) == _expected(events, "req-7", "payment")
    window = search_events(
        "req-7", backend=opensearch, index_prefix=os_prefix, since=BASE_MS + 1000, until=BASE_MS + 2500
    )
    assert seqs_of(window) == [s for s in want if 1000 <= _timestamp(s) - BASE_MS <= 2500]
    assert search_events("req-404", backend=opensearch, index_prefix=os_prefix) == []


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, env={"COLUMNS": "200"}, catch_exceptions=False)


def test_cli_collect_and_search_with_the_opensearch_backend(os_url: str, os_prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    events = _write(path)
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "data_dir": str(tmp_path / "data"),
                    "sinks": ["opensearch"],
                    "es_url": os_url,
                    "index_prefix": os_prefix,
                }
            }
        )
    )
    result = _run(["collect", "--config", str(config), "--once", "--json", str(path)])
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.output.strip().splitlines()[-1])
    assert stats["shipped"] == TOTAL and stats["opensearch"]["delivered"] == TOTAL
    httpx.post(f"{os_url}/{os_prefix}-*/_refresh").raise_for_status()
    found = _run(["search", "req-11", "--config", str(config), "--backend", "opensearch", "--json"])
    assert found.exit_code == 0, found.output
    assert seqs_of(orjson.loads(found.output)) == _expected(events, "req-11")
    timeline = _run(["search", "req-11", "--config", str(config), "--backend", "opensearch"])
    assert timeline.exit_code == 0 and f"{TOTAL // 20} lines" in timeline.output
