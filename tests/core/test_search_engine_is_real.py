"""The Elasticsearch the tests use is a real search engine: templates, mappings, term queries, sorting."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from corrtrace.collector import ensure_index_template
from elasticsearch import helpers


def test_term_query_returns_exactly_one_ids_documents_in_time_order(es: Any, index_prefix: str) -> None:
    ensure_index_template(es, prefix=index_prefix)
    index = f"{index_prefix}-2026.11.27"
    rng = random.Random(7)
    ids = [f"req-{n:02d}" for n in range(50)]
    start = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    docs = []
    for n in range(1000):
        cid = ids[n % 50]  # 20 documents per id
        stamp = start + timedelta(milliseconds=rng.randrange(0, 3_600_000))
        docs.append(
            {
                "_op_type": "create",
                "_index": index,
                "_id": f"doc-{n}",
                "@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "message": f"step {n}",
                "correlation_id": cid,
                "service": {"name": rng.choice(["ui", "catalog", "checkout"])},
            }
        )
    ok, errors = helpers.bulk(es, docs, refresh="wait_for")
    assert ok == 1000 and not errors

    mapping = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["correlation_id"]["type"] == "keyword"
    assert mapping["@timestamp"]["type"] == "date"

    wanted = "req-17"
    result = es.search(
        index=f"{index_prefix}-*",
        query={"term": {"correlation_id": wanted}},
        sort=[{"@timestamp": "asc"}],
        size=100,
    )
    hits = result["hits"]["hits"]
    expected = sorted((d for d in docs if d["correlation_id"] == wanted), key=lambda d: d["@timestamp"])
    assert [h["_id"] for h in hits] == [d["_id"] for d in expected]
    assert len(hits) == 20
    assert all(h["_source"]["correlation_id"] == wanted for h in hits)
    stamps = [h["_source"]["@timestamp"] for h in hits]
    assert stamps == sorted(stamps)
    # a prefix of an id is not a match: the field is a keyword, not analysed text
    assert es.count(index=f"{index_prefix}-*", query={"term": {"correlation_id": "req-1"}})["count"] == 0
