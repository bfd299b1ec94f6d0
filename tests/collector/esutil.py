"""Helpers for reading back what the collector stored in the real Elasticsearch node."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from tests.collector.faultproxy import FaultProxy


def stored(es: Any, prefix: str) -> list[tuple[str, int]]:
    """Every stored document as (``_id``, ``labels.seq``)."""
    from elasticsearch.helpers import scan

    es.indices.refresh(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    return [
        (hit["_id"], int(hit["_source"]["labels"]["seq"]))
        for hit in scan(es, index=f"{prefix}-*", query={"query": {"match_all": {}}}, size=5000, _source=["labels.seq"])
    ]


def exactly_once(pairs: list[tuple[str, int]], total: int) -> None:
    ids = Counter(i for i, _ in pairs)
    seqs = Counter(s for _, s in pairs)
    assert len(pairs) == total, f"{len(pairs)} documents stored, expected {total}"
    assert max(ids.values()) == 1 and max(seqs.values()) == 1
    assert set(seqs) == set(range(total))


def reject_some_items(every: int = 5, times: int = 2):
    """A proxy hook: items whose ``_id`` hash picks them get ``429`` (not forwarded) ``times`` times each."""

    def hook(proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes):
        if "_bulk" not in path:
            return None
        lines = body.split(b"\n")
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        hits = proxy.state.setdefault("hits", Counter())
        keep, injected = [], []
        for n, (action, source) in enumerate(pairs):
            doc_id = next(iter(orjson.loads(action).values()))["_id"]
            if hash(doc_id) % every == 0 and hits[doc_id] < times:
                hits[doc_id] += 1
                injected.append(n)
            else:
                keep.append(action + b"\n" + source + b"\n")
        if not injected:
            return None
        real: list[Any] = []
        errors = True
        out_headers = {
            "Content-Type": "application/vnd.elasticsearch+json;compatible-with=8",
            "X-Elastic-Product": "Elasticsearch",
        }
        if keep:
            _, out_headers, data = proxy.forward(method, path, headers, b"".join(keep))
            real = orjson.loads(data).get("items", [])
        items, it = [], iter(real)
        for n in range(len(pairs)):
            if n in injected:
                items.append(
                    {
                        "create": {
                            "status": 429,
                            "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "rejected execution (injected by proxy)",
                            },
                        }
                    }
                )
            else:
                items.append(next(it))
        proxy.state["injected"] = proxy.state.get("injected", 0) + len(injected)
        return 200, out_headers, orjson.dumps({"errors": errors, "items": items})

    return hook
