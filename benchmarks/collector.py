"""Collector benchmarks (issue 4 §8). Medians, and ratios against peers measured in the same run.

    python benchmarks/collector.py [--quick] [--skip-rss] [--skip-es-1m]

Needs the Elasticsearch node (ES_URL, else http://127.0.0.1:$ES_PORT, default 9200) and a moto server (MOTO_URL,
else MOTO_PORT, default 5000). Uses its own index prefixes and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _lines import BASE_MS, iso, make_line, write_file  # noqa: E402  (benchmarks/_lines.py)
from corrtrace.collector import (  # noqa: E402
    CloudWatchSink,
    ElasticsearchSink,
    EmbeddedStore,
    SearchQuery,
    ship_files,
)
from corrtrace.collector.cli import COLLECT_GC_THRESHOLD  # noqa: E402
from corrtrace.collector.record import make_record, make_records  # noqa: E402
from corrtrace.collector.sinks.cloudwatch import logs_client  # noqa: E402
from corrtrace.collector.sinks.cw_batcher import CwLimits  # noqa: E402

from corrtrace.endpoints import backend_url  # noqa: E402

for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_key, _value)
ES_URL = backend_url("ES")
MOTO_URL = backend_url("MOTO")


def median_of(fn: Any, runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def es_client() -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(ES_URL, request_timeout=120)


def drop(es: Any, prefix: str) -> None:
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es.options(ignore_status=404).indices.delete_index_template(name=prefix)


# 1 -------------------------------------------------------------------------------------------------------------
PARSE_TARGET_RATIO = 4.0  # x the elasticsearch.helpers path, with `corrtrace collect`'s GC setting


def bench_parse(n: int, runs: int, tmp: Path) -> dict[str, Any]:
    """Read, parse, route and build _bulk bodies on one core, from a file of 350-byte lines (page cache),
    in the collector's 2 MiB batches; the peer reads the same file with json.loads + helpers' chunking."""
    from corrtrace.collector.checkpoint import Checkpoint
    from corrtrace.collector.sources.tail import FileTail
    from elasticsearch.helpers.actions import _chunk_actions, expand_action
    from elasticsearch.serializer import JSONSerializer

    path = tmp / "parse.log"
    write_file(path, n)
    sink = ElasticsearchSink(None, prefix="logs-corrtrace", install_template=False)

    def ours() -> float:
        t = time.perf_counter()
        tail = FileTail([str(path)], Checkpoint(None))
        now = int(time.time() * 1000)
        done = 0
        while True:
            lines = tail.read(20_000, 2 << 20)
            if not lines:
                break
            records = make_records(lines, now)[0]
            sink.build_body(records)
            done += len(records)
        tail.close()
        assert done == n
        return n / (time.perf_counter() - t)

    def helpers_peer() -> float:
        t = time.perf_counter()

        def actions():  # type: ignore[no-untyped-def]
            offset = 0
            with open(path, "rb") as fh:
                for line in fh:
                    doc = json.loads(line)
                    yield {
                        "_op_type": "create",
                        "_id": f"0123456789abcdef-{offset}",
                        "_source": doc,
                        "_index": "logs-corrtrace-" + doc["@timestamp"][:10].replace("-", "."),
                    }
                    offset += len(line)

        for _ in _chunk_actions(map(expand_action, actions()), 500, 100 * 1024 * 1024, None, JSONSerializer()):
            pass
        return n / (time.perf_counter() - t)

    import gc

    mine = median_of(ours, runs)
    peer = median_of(helpers_peer, runs)
    old = gc.get_threshold()
    gc.set_threshold(*COLLECT_GC_THRESHOLD)  # what `corrtrace collect` sets for its process
    try:
        mine_cli = median_of(ours, runs)
        peer_cli = median_of(helpers_peer, runs)
    finally:
        gc.set_threshold(*old)
    return {
        "events_per_s": round(mine),
        "helpers_events_per_s": round(peer),
        "ratio_vs_helpers": mine / peer,
        "events_per_s_collect_gc": round(mine_cli),
        "helpers_events_per_s_collect_gc": round(peer_cli),
        "ratio_vs_helpers_collect_gc": mine_cli / peer_cli,
        # The target is the same-run ratio with which the first version recorded 311k events/s (2caf24b: the
        # helpers path 4.0x slower); an absolute rate measures the machine as much as the code.
        "target_ratio_vs_helpers_collect_gc": PARSE_TARGET_RATIO,
    }


# 1b ------------------------------------------------------------------------------------------------------------
TEXT_LINES = {  # one line of each built-in format, about the JSON lines' size; {i} varies per line
    "talk": "30-11-2026 12:00:{s:02d} checkout-svc INFO [01890a5d-ac96-774b-bcce-{i:012d}] GET /api/orders handled "
    + "x" * 150,
    "logfmt": 'time=2026-11-30T12:00:{s:02d}.123Z level=info msg="GET /api/orders handled" service=orders-go '
    "correlation_id=01890a5d-ac96-774b-bcce-{i:012d} status=200 duration=1.2ms path=/api/orders " + "pad=" + "x" * 100,
    "logback": "2026-11-30 12:00:{s:02d},123 [http-nio-8080-exec-7] INFO  c.e.orders.OrderController - "
    "[01890a5d-ac96-774b-bcce-{i:012d}] GET /api/orders handled " + "x" * 120,
    "nginx": '127.0.0.1 - - [30/Nov/2026:12:00:{s:02d} +0000] "GET /api/orders?page=2 HTTP/1.1" 200 612 "-" '
    '"Mozilla/5.0 (X11; Linux x86_64) corrtrace-bench" "01890a5d-ac96-774b-bcce-{i:012d}" 0.012 '
    "1796040000.250 " + "",
}
TRACEBACK = (
    b"Traceback (most recent call last):\n"
    + b"".join(
        b'  File "/srv/app/orders.py", line %d, in handler_%d\n    return charge(order)\n' % (i, i) for i in range(5)
    )
    + b"ValueError: card declined\n"
)


def _once(path: Path, fmt: Any = None, multiline: bool = False) -> float:
    """Seconds to take ``path`` through tail (+ multiline joiner) -> make_records -> bulk body, on one core (what
    ``Pipeline._add`` does for a batch, without subscribers)."""
    from corrtrace.collector.checkpoint import Checkpoint
    from corrtrace.collector.sources.multiline import Multiline
    from corrtrace.collector.sources.tail import FileTail

    sink = ElasticsearchSink(None, prefix="logs-corrtrace", install_template=False)
    t = time.perf_counter()
    source: Any = FileTail([str(path)], Checkpoint(None))
    if multiline:
        source = Multiline(source)
    now = int(time.time() * 1000)
    while True:
        got = source.read(20_000, 2 << 20, True)
        if not got:
            break
        sink.build_body(make_records(got, now, fmt)[0])
    source.close()
    return time.perf_counter() - t


def _alternating(runs: int, a: Any, b: Any) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run in alternating rounds so load drift hits both alike."""
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(a())
        times_b.append(b())
    return statistics.median(times_a), statistics.median(times_b)


def bench_formats(n: int, runs: int, tmp: Path) -> dict[str, Any]:
    """Each built-in text format (declared, and found by ``auto``) vs the JSON path, same loop, same line count
    and similar line size, alternating rounds; then the multiline joiner vs none on the same bytes (JSON lines
    with 12-line Python tracebacks between them, and JSON lines only)."""
    import gc

    from corrtrace.collector.parsers import build_format, compiled

    old = gc.get_threshold()
    gc.set_threshold(*COLLECT_GC_THRESHOLD)
    try:
        json_path = tmp / "formats-json.log"
        write_file(json_path, n)
        # the parsers compiled by ``make`` (collector/README.md, "Compiled parsers"), or their .py sources
        out: dict[str, Any] = {"lines": n, "target_ratio": 0.5, "compiled_parsers": compiled.IN_USE}
        for name, template in TEXT_LINES.items():
            path = tmp / f"formats-{name}.log"
            path.write_text("".join(template.format(i=i % 10_000, s=i % 60) + "\n" for i in range(n)))
            declared, auto = build_format(name), build_format("auto")
            json_s, fmt_s = _alternating(runs, lambda: _once(json_path), lambda p=path, f=declared: _once(p, f))
            _, auto_s = _alternating(1, lambda: 0.0, lambda p=path, f=auto: _once(p, f))
            out[name] = {
                "events_per_s": round(n / fmt_s),
                "json_events_per_s": round(n / json_s),
                "ratio_vs_json": json_s / fmt_s,
                "auto_events_per_s": round(n / auto_s),
            }
        mixed = tmp / "formats-mixed.log"
        with open(mixed, "wb") as fh:
            for i in range(n):
                fh.write(make_line(i) + b"\n")
                if i % 20 == 19:
                    fh.write(TRACEBACK)
        mb = mixed.stat().st_size / 1e6
        single_s, joined_s = _alternating(runs, lambda: _once(mixed), lambda: _once(mixed, multiline=True))
        plain_s, wrapped_s = _alternating(runs, lambda: _once(json_path), lambda: _once(json_path, multiline=True))
        out["multiline"] = {
            "mixed_mb_per_s_single_line": mb / single_s,
            "mixed_mb_per_s_multiline": mb / joined_s,
            "mixed_ratio": single_s / joined_s,
            "json_only_ratio": plain_s / wrapped_s,
            "target_ratio": 0.8,
        }
        return out
    finally:
        gc.set_threshold(*old)


# 2 -------------------------------------------------------------------------------------------------------------
def bench_es_end_to_end(n: int, runs: int, tmp: Path) -> dict[str, Any]:
    """File -> real Elasticsearch with checkpoints, vs streaming_bulk fed the same (already parsed) documents."""
    from elasticsearch.helpers import streaming_bulk

    es = es_client()
    path = tmp / "e2e.log"
    write_file(path, n)
    lines = path.read_bytes().splitlines()

    def ours() -> float:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        sink = ElasticsearchSink(es, prefix=prefix)
        from corrtrace.collector.sinks.elasticsearch import ensure_index_template

        ensure_index_template(es, prefix)
        es.indices.create(index=f"{prefix}-{iso(BASE_MS)[:10].replace('-', '.')}")
        t = time.perf_counter()
        ship_files([path], [sink], data_dir=tmp / f"data-{prefix}")
        elapsed = time.perf_counter() - t
        assert sink.stats.delivered == n, sink.stats
        drop(es, prefix)
        return n / elapsed

    def peer() -> float:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        from corrtrace.collector.sinks.elasticsearch import ensure_index_template

        ensure_index_template(es, prefix)
        index = f"{prefix}-{iso(BASE_MS)[:10].replace('-', '.')}"
        es.indices.create(index=index)
        docs = [orjson.loads(x) for x in lines]
        actions = [{"_op_type": "create", "_index": index, "_id": f"src-{i}", "_source": d} for i, d in enumerate(docs)]
        t = time.perf_counter()
        ok = sum(
            1
            for success, _ in streaming_bulk(es, actions, max_retries=3, raise_on_error=False, ignore_status=(409,))
            if success
        )
        elapsed = time.perf_counter() - t
        assert ok == n
        drop(es, prefix)
        return n / elapsed

    results_ours, results_peer = [], []
    for _ in range(runs):  # alternate so both see the same node state
        results_ours.append(ours())
        results_peer.append(peer())
    mine, theirs = statistics.median(results_ours), statistics.median(results_peer)
    return {
        "events_per_s": round(mine),
        "streaming_bulk_events_per_s": round(theirs),
        "ratio_vs_streaming_bulk": mine / theirs,
        "target_ratio": 1.0,
    }


# 3 -------------------------------------------------------------------------------------------------------------
def bench_cloudwatch_fill(n: int, tmp: Path) -> dict[str, Any]:
    """A backlog shipped to CloudWatch (moto): how full each PutLogEvents call is against the binding limit."""
    import httpx

    httpx.post(MOTO_URL + "/moto-api/reset")
    path = tmp / "cw.log"
    write_file(path, n)
    sink = CloudWatchSink(logs_client(MOTO_URL), log_stream="bench")  # one stream: the backlog case
    t = time.perf_counter()
    ship_files([path], [sink], data_dir=tmp / "cw-data")
    elapsed = time.perf_counter() - t
    fills = sink.fills
    return {
        "calls": len(fills),
        "mean_fill": statistics.fmean(fills),
        "min_fill_excluding_last": min(fills[:-1]),
        "events_per_s_to_moto": round(n / elapsed),
        "target_mean_fill": 0.95,
        "binding_limit": "bytes (1,048,576 incl. 26 B/event)"
        if 376 * CwLimits().max_events > CwLimits().max_batch_bytes
        else "events",
    }


# 4 -------------------------------------------------------------------------------------------------------------
def _records(start: int, n: int, ids: int) -> list[Any]:
    out = []
    for i in range(start, start + n):
        record, _ = make_record("benchsrc", i, i + 1, make_line(i, ids))
        out.append(record)
    return out


def _latencies(fn: Any, cids: list[str]) -> tuple[float, float]:
    times = []
    for cid in cids:
        t = time.perf_counter()
        found = fn(cid)
        times.append((time.perf_counter() - t) * 1000)
        assert found, cid
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def bench_search(sizes: list[int], tmp: Path, with_es: bool, es_sizes: list[int]) -> dict[str, Any]:
    """p50/p95 of a search by correlation id (about 10 lines per request) as the store grows."""
    out: dict[str, Any] = {}
    rng = random.Random(7)
    store = EmbeddedStore(tmp / "search-store")
    es: Any = es_client() if with_es else None
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    es_sink = ElasticsearchSink(es, prefix=prefix) if es is not None else None
    loaded = 0
    for size in sorted(set(sizes) | set(es_sizes if with_es else [])):
        ids = size // 10
        while loaded < size:  # ids grow with the store: every request keeps ~10 lines
            chunk = _records(loaded, min(50_000, size - loaded), ids)
            if size in sizes or loaded < max(sizes):
                store.deliver(chunk)
            if es_sink is not None and size in es_sizes:
                es_sink.deliver(chunk)
            loaded += len(chunk)
        cids = [f"01890a5d-ac96-774b-bcce-{rng.randrange(ids):012d}" for _ in range(200)]
        if size in sizes:
            p50, p95 = _latencies(lambda c: store.search(SearchQuery(c)), cids)
            out[f"embedded_{size}"] = {"p50_ms": p50, "p95_ms": p95}
        if es_sink is not None and size in es_sizes:
            es.indices.refresh(index=f"{prefix}-*")
            es.indices.forcemerge(index=f"{prefix}-*", max_num_segments=1)
            p50, p95 = _latencies(lambda c: es_sink.search(SearchQuery(c)), cids)
            out[f"elasticsearch_{size}"] = {"p50_ms": p50, "p95_ms": p95}
    for backend in ("embedded", "elasticsearch"):
        keys = sorted((int(k.split("_")[1]), k) for k in out if k.startswith(backend))
        if len(keys) >= 2:
            small, large = out[keys[0][1]], out[keys[-1][1]]
            out[f"{backend}_p50_ratio_{keys[-1][0]}_vs_{keys[0][0]}"] = large["p50_ms"] / small["p50_ms"]
    if es is not None:
        drop(es, prefix)
    return out


# 5 -------------------------------------------------------------------------------------------------------------
def bench_rss(n: int, down_seconds: float, tmp: Path) -> dict[str, Any]:
    """Peak RSS of `corrtrace collect` shipping n events while Elasticsearch is unreachable for a while."""
    import yaml

    from tests.collector.faultproxy import FaultProxy

    path = tmp / "rss.log"
    write_file(path, n)
    size = path.stat().st_size
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    data = tmp / "rss-data"
    es = es_client()
    with FaultProxy(ES_URL) as proxy:
        config = tmp / "rss.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "collector": {
                        "paths": [str(path)],
                        "data_dir": str(data),
                        "sinks": ["elasticsearch"],
                        "es_url": proxy.url,
                        "index_prefix": prefix,
                        "backoff_initial": 0.2,
                        "backoff_max": 2.0,
                        "buffer_max_bytes": 64 << 20,
                    }
                }
            )
        )
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config), "--once"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = 0
        went_down = came_up = None
        checkpoint = data / "checkpoint.json"
        while proc.poll() is None:
            try:
                for row in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if row.startswith("VmHWM:"):
                        peak = max(peak, int(row.split()[1]))
                progress = (
                    max((v["offset"] for v in orjson.loads(checkpoint.read_bytes())["sources"].values()), default=0)
                    if checkpoint.exists()
                    else 0
                )
            except (OSError, orjson.JSONDecodeError):
                progress = 0
            if went_down is None and progress >= size // 2:
                proxy.down, went_down = True, time.perf_counter()
            if went_down is not None and came_up is None and time.perf_counter() - went_down >= down_seconds:
                proxy.down, came_up = False, time.perf_counter()
            time.sleep(0.1)
        elapsed = time.perf_counter() - t
    es.indices.refresh(index=f"{prefix}-*")
    count = es.count(index=f"{prefix}-*")["count"]
    drop(es, prefix)
    return {
        "events": n,
        "stored": count,
        "exit_code": proc.returncode,
        "peak_rss_mb": peak / 1024,
        "target_mb": 150,
        "down_seconds": down_seconds,
        "wall_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-es-1m", action="store_true", help="search on Elasticsearch at 100k only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", action="append", metavar="ROW", help="run only this row (repeatable), e.g. formats")
    args = parser.parse_args()
    q = args.quick
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="corrtrace-bench-") as tmpdir:
        tmp = Path(tmpdir)
        steps = [
            ("parse_route_bulk", lambda: bench_parse(50_000 if q else 200_000, 3 if q else 5, tmp)),
            ("formats", lambda: bench_formats(30_000 if q else 100_000, 3 if q else 5, tmp)),
            ("file_to_elasticsearch", lambda: bench_es_end_to_end(20_000 if q else 100_000, 1 if q else 3, tmp)),
            ("cloudwatch_fill", lambda: bench_cloudwatch_fill(30_000 if q else 100_000, tmp)),
            (
                "search",
                lambda: bench_search(
                    [10_000, 100_000] if q else [100_000, 1_000_000],
                    tmp,
                    True,
                    [10_000] if q else ([100_000] if args.skip_es_1m else [100_000, 1_000_000]),
                ),
            ),
        ]
        if not args.skip_rss:
            steps.append(("rss_with_es_down", lambda: bench_rss(100_000 if q else 1_000_000, 5 if q else 60, tmp)))
        if args.only:
            unknown = set(args.only) - {name for name, _ in steps}
            if unknown:
                parser.error(f"unknown row(s): {', '.join(sorted(unknown))} (rows: {', '.join(n for n, _ in steps)})")
            steps = [(name, fn) for name, fn in steps if name in args.only]
        for name, fn in steps:
            t = time.perf_counter()
            results[name] = fn()
            results[name]["bench_seconds"] = round(time.perf_counter() - t, 1)
            if not args.json:
                print(f"{name}: " + json.dumps(results[name], default=lambda x: round(x, 3)), flush=True)
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
