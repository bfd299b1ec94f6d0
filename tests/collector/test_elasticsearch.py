"""The Elasticsearch sink against the real node: template, idempotent create, per-item 429s, a real mapping
error to the dead-letter file, the node unreachable mid-stream, search, and the CloudWatch subscription Lambda."""

from __future__ import annotations

import base64
import gzip
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from corrtrace.collector import (
    Backoff,
    DeadLetters,
    ElasticsearchSink,
    EmbeddedStore,
    Pipeline,
    ensure_index_template,
    search_events,
    ship_files,
)
from corrtrace.collector.sources import cloudwatch_subscription
from corrtrace.collector.sources.tail import FileTail
from elasticsearch import Elasticsearch

from tests.collector.esutil import exactly_once, reject_some_items, stored
from tests.collector.faultproxy import FaultProxy
from tests.collector.helpers import BASE_MS, line, write_lines
from tests.fixtures import AWS_EVENTS

FAST = Backoff(0.02, 0.3)


def test_index_template_maps_the_contract_fields(es: Any, index_prefix: str, tmp_path: Path) -> None:
    ensure_index_template(es, prefix=index_prefix)
    path = tmp_path / "a.log"
    write_lines(
        path, range(3), trace={"id": "t" * 32}, span={"id": "s" * 16}, event={"outcome": "success", "duration": 1500}
    )
    ship_files([path], [ElasticsearchSink(es, prefix=index_prefix)])
    mapping = next(iter(es.indices.get_mapping(index=f"{index_prefix}-*").body.values()))["mappings"]
    props = mapping["properties"]
    assert props["correlation_id"]["type"] == "keyword"
    assert props["trace"]["properties"]["id"]["type"] == "keyword"
    assert props["span"]["properties"]["id"]["type"] == "keyword"
    assert props["service"]["properties"]["name"]["type"] == "keyword"
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert props["event"]["properties"]["outcome"]["type"] == "keyword"
    assert props["event"]["properties"]["duration"]["type"] == "long"
    assert props["@timestamp"]["type"] == "date"
    assert props["message"]["type"] == "text"
    settings = next(iter(es.indices.get_settings(index=f"{index_prefix}-*").body.values()))["settings"]["index"]
    assert settings["mapping"]["total_fields"]["limit"] == "1000"


def test_reshipping_never_duplicates(es: Any, index_prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(2000))
    sink = ElasticsearchSink(es, prefix=index_prefix)
    ship_files([path], [sink])
    ship_files([path], [sink])  # no checkpoint: everything is sent again
    assert sink.stats.delivered == 2000 and sink.stats.duplicates == 2000
    exactly_once(stored(es, index_prefix), 2000)


def test_item_429s_are_retried_and_a_mapping_error_is_dead_lettered(
    es: Any, es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(3000))
    with open(path, "ab") as fh:  # a real mapping error: event.duration is a long
        fh.write(
            orjson.dumps(
                {
                    "@timestamp": "2026-01-01T00:00:00.000Z",
                    "message": "bad",
                    "correlation_id": "x",
                    "event": {"duration": "not-a-number"},
                    "labels": {"seq": -1},
                }
            )
            + b"\n"
        )
    dead = DeadLetters(tmp_path / "dead.jsonl")
    with FaultProxy(es_url, reject_some_items(every=5, times=2)) as proxy:
        client = Elasticsearch(proxy.url, request_timeout=30)
        sink = ElasticsearchSink(client, prefix=index_prefix, dead_letters=dead, backoff=FAST)
        ship_files([path], [sink], batch_max_events=700)
    assert proxy.state["injected"] > 500  # ~1/5 of the items, twice each
    assert sink.stats.retried == proxy.state["injected"]
    exactly_once(stored(es, index_prefix), 3000)
    letters = [orjson.loads(x) for x in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert len(letters) == 1 and dead.count == 1 and sink.stats.dead_lettered == 1
    assert "document_parsing_exception" in letters[0]["reason"] or "mapper_parsing" in letters[0]["reason"]
    assert letters[0]["status"] == 400 and orjson.loads(letters[0]["event"])["message"] == "bad"


def test_elasticsearch_down_mid_stream_loses_nothing_and_keeps_order(
    es: Any, es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    total = 20_000
    log_path = tmp_path / "app.log"
    log_path.write_bytes(line(0))
    store = EmbeddedStore(tmp_path / "store")  # records delivery order
    with FaultProxy(es_url) as proxy:
        sink = ElasticsearchSink(Elasticsearch(proxy.url, request_timeout=10), prefix=index_prefix, backoff=FAST)
        pipeline = Pipeline(
            [],
            [sink, store],
            data_dir=tmp_path / "data",
            batch_max_events=500,
            flush_interval=0.05,
            idle_sleep=0.01,
            memory_batches=2,
            buffer_max_bytes=400_000,
        )
        pipeline.sources.append(FileTail([str(log_path)], pipeline.checkpoint, scan_interval=0.05))
        pipeline.start()

        def writer() -> None:
            with open(log_path, "ab") as fh:
                for i in range(1, total):
                    fh.write(line(i))
                    if i % 500 == 0:
                        fh.flush()
                        time.sleep(0.02)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.3)
        proxy.down = True  # Elasticsearch unreachable: connections dropped
        thread.join()
        time.sleep(1.5)
        read_while_down = pipeline.stats.read
        time.sleep(0.5)
        assert pipeline.stats.read == read_while_down < total  # buffer full: tailing paused, the file buffers
        assert 0 < pipeline.queue.disk.peak_disk_bytes <= 400_000  # spilled to disk, within its bound
        assert proxy.refused > 0
        proxy.down = False
        deadline = time.monotonic() + 60
        while pipeline.stats.shipped < total and time.monotonic() < deadline:
            time.sleep(0.1)
        pipeline.stop()
    exactly_once(stored(es, index_prefix), total)
    import sqlite3

    rows = sqlite3.connect(store.path).execute("SELECT doc FROM events ORDER BY seq").fetchall()
    assert [orjson.loads(r[0])["labels"]["seq"] for r in rows] == list(range(total))  # in order per stream


def test_search_returns_one_requests_lines_like_the_embedded_store(es: Any, index_prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    services = ["gateway", "orders", "payment"]
    with open(path, "wb") as fh:
        for i in range(300):
            fh.write(
                line(i, cid=f"req-{i % 3}", service=services[(i // 3) % 3], level="ERROR" if i % 7 == 0 else "INFO")
            )
    store = EmbeddedStore(tmp_path / "store")
    ship_files([path], [ElasticsearchSink(es, prefix=index_prefix), store])
    es.indices.refresh(index=f"{index_prefix}-*")
    from_es = search_events("req-1", backend=es, index_prefix=index_prefix)
    assert [e["labels"]["seq"] for e in from_es] == list(range(1, 300, 3))
    assert from_es == search_events("req-1", backend=store)
    errors = search_events("req-1", backend=es, index_prefix=index_prefix, level="error", service="orders")
    assert errors == search_events("req-1", backend=store, level="ERROR", service="orders")
    assert errors and all(e["log"]["level"] == "ERROR" and e["service"]["name"] == "orders" for e in errors)
    window = search_events("req-1", backend=es, index_prefix=index_prefix, since=BASE_MS + 100, until=BASE_MS + 200)
    assert [e["labels"]["seq"] for e in window] == [s for s in range(1, 300, 3) if 100 <= s <= 200]


def _subscription_event(group: str, messages: list[tuple[str, int, str]]) -> dict[str, Any]:
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": "s1",
        "subscriptionFilters": ["corrtrace"],
        "logEvents": [{"id": i, "timestamp": ts, "message": m} for i, ts, m in messages],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(orjson.dumps(payload))).decode()}}


def test_cloudwatch_subscription_lambda_indexes_each_event_once(es: Any, index_prefix: str, tmp_path: Path) -> None:
    sink = ElasticsearchSink(es, prefix=index_prefix, dead_letters=DeadLetters(tmp_path / "dead.jsonl"))
    real = orjson.loads((AWS_EVENTS / "cloudWatchLogEvent.json").read_bytes())
    assert cloudwatch_subscription.handler(real, None, sink=sink) == {"received": 2, "acknowledged": 2}
    messages = [
        (
            f"3700000000000000000000000000000000000000000000000000{i:04d}",
            BASE_MS + i,
            line(i, cid="req-lambda").decode().strip(),
        )
        for i in range(20)
    ]
    event = _subscription_event("/corrtrace/test", messages)
    assert cloudwatch_subscription.handler(event, None, sink=sink)["received"] == 20
    cloudwatch_subscription.handler(event, None, sink=sink)  # Lambda retried the invocation
    assert sink.stats.duplicates == 20
    es.indices.refresh(index=f"{index_prefix}-*")
    found = search_events("req-lambda", backend=es, index_prefix=index_prefix)
    assert [e["labels"]["seq"] for e in found] == list(range(20))
    assert found[0]["aws"]["cloudwatch"]["log_group"] == "/corrtrace/test"
    plain = es.search(index=f"{index_prefix}-*", query={"match": {"message": "First"}})["hits"]["hits"]
    assert plain[0]["_source"]["log"]["original"] == "[ERROR] First test message"
    assert plain[0]["_source"]["@timestamp"] == "2015-08-24T19:03:07.000Z"


def test_opensearch_client_uses_the_same_small_interface(
    es_url: str, es: Any, index_prefix: str, tmp_path: Path
) -> None:
    """opensearch-py behind the same interface (run against the Elasticsearch node: same bulk/search API)."""
    from opensearchpy import OpenSearch

    path = tmp_path / "a.log"
    write_lines(path, range(100), cid="req-os")
    client = OpenSearch([es_url])
    sink = ElasticsearchSink(client, prefix=index_prefix)
    ship_files([path], [sink])
    ship_files([path], [sink])
    assert sink.stats.delivered == 100 and sink.stats.duplicates == 100
    client.indices.refresh(index=f"{index_prefix}-*")
    assert len(search_events("req-os", backend=client, index_prefix=index_prefix)) == 100


def test_connect_uses_api_key_or_basic_auth_and_verifies_tls_by_default() -> None:
    from corrtrace.collector import connect

    client = connect("https://es.example:9200", api_key="secret-key", ca_certs="/etc/ssl/certs/ca-certificates.crt")
    assert client._headers["authorization"] == "ApiKey secret-key"
    node = client.transport.node_pool.all()[0]
    assert node.config.verify_certs is True and node.config.ca_certs == "/etc/ssl/certs/ca-certificates.crt"
    basic = connect("https://es.example:9200", username="u", password="p")
    assert basic._headers["authorization"].startswith("Basic ")
    assert "secret-key" not in repr(client._headers)  # never printed
