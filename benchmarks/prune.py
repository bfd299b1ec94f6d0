"""Retention: ``corrtrace prune`` deleting 100 old daily indices on the real Elasticsearch node, against the
peer approach of one DELETE per index (what a shell loop or a per-index lifecycle job does), alternating runs.

Needs the Elasticsearch node (``$ES_URL``, else ``$ES_PORT``, else http://127.0.0.1:9200). ``--count N --runs R``
to change sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from corrtrace.collector.record import day_of
from corrtrace.collector.sinks.elasticsearch import ElasticsearchSink, connect

from corrtrace.endpoints import backend_url

ES_URL = backend_url("ES")
DAY_MS = 86_400_000


SMALL_INDEX = {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"}}
CREATORS = 8  # concurrent create requests: the master batches their cluster-state updates


def create(prefix: str, count: int) -> list[str]:
    """``count`` empty daily indices older than the limit, created in parallel (one at a time, 100 of them took
    longer than a loaded node's patience); timing starts only once every one of them is green."""
    now = int(time.time() * 1000)
    names = [f"{prefix}-{day_of(now - (40 + i) * DAY_MS)}" for i in range(count)]
    with httpx.Client(timeout=300) as client, ThreadPoolExecutor(CREATORS) as pool:

        def put(name: str) -> None:
            client.put(f"{ES_URL}/{name}", params={"wait_for_active_shards": "0"}, json=SMALL_INDEX).raise_for_status()

        list(pool.map(put, names))
        health = client.get(
            f"{ES_URL}/_cluster/health/{prefix}-*", params={"wait_for_status": "green", "timeout": "300s"}
        ).json()
        assert not health["timed_out"] and health["active_shards"] == count, health
    return names


def ours(prefix: str) -> tuple[float, int]:
    sink = ElasticsearchSink(connect(ES_URL), prefix=prefix, install_template=False)
    t = time.perf_counter()
    removed = sink.prune(30)
    return time.perf_counter() - t, len(removed)


def one_by_one(names: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for name in names:
            client.delete(f"{ES_URL}/{name}").raise_for_status()
    return time.perf_counter() - t, len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    mine: list[float] = []
    peer: list[float] = []
    for run in range(args.runs):  # alternate, so both see the same node state
        prefix = f"bench-prune-{os.getpid()}-{run}"
        create(prefix, args.count)
        seconds, removed = ours(prefix)
        assert removed == args.count, f"pruned {removed} of {args.count}"
        mine.append(seconds)
        names = create(prefix + "-peer", args.count)
        peer.append(one_by_one(names)[0])
    result: dict[str, Any] = {
        "indices": args.count,
        "runs": args.runs,
        "corrtrace_prune_s": statistics.median(mine),
        "delete_one_by_one_s": statistics.median(peer),
    }
    result["ratio_vs_one_by_one"] = result["corrtrace_prune_s"] / result["delete_one_by_one_s"]
    print(f"prune_daily_indices: {json.dumps(result, default=lambda x: round(x, 3))}")
    print(
        f"corrtrace prune: {result['corrtrace_prune_s']:.2f} s median for {args.count} daily indices; "
        f"one DELETE per index: {result['delete_one_by_one_s']:.2f} s; ratio {result['ratio_vs_one_by_one']:.2f}x"
    )


if __name__ == "__main__":
    main()
