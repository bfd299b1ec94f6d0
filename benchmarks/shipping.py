"""Shipping a file to Elasticsearch: corrtrace vs the OpenTelemetry Collector, and the engine's own ceilings.

    python benchmarks/shipping.py [--lines N] [--runs R] [--workers 1,2] [--no-otel]

One generated JSON-lines file (benchmarks/_lines.py, about 350 bytes a line) is shipped into a fresh index on the
real node (ES_URL, else http://127.0.0.1:$ES_PORT, default 9200) by each contender in alternating rounds:

- ``corrtrace collect --once`` (one run per ``--workers`` value), a separate process;
- the OpenTelemetry Collector (benchmarks/otelcol/: filelog receiver with a JSON parser -> transform -> batch ->
  elasticsearch exporter), a separate process, built by this script with Go on first use;
- the engine's ceilings, in this process: pre-built NDJSON ``_bulk`` bodies posted by two threads, and
  ``elasticsearch.helpers.parallel_bulk`` fed documents parsed beforehand.

Wall time is from start until every document is searchable (``_count`` polled); a shipper's CPU seconds are
the kernel's accounting of its process (``/proc/<pid>/stat`` utime + stime, children included, read at exit
through ``wait4``), its peak RSS is ``VmHWM``; corrtrace runs from compiled bytecode, as an installed package
does (``bytecode_env``; one untimed run compiles it first). Every index uses corrtrace's index template, so both
shippers index into the same mapping. The exporter runs in its ``ecs`` mapping mode: corrtrace stores ECS documents (the
line's own fields at the top level), and ``ecs`` is the mode that writes the same shape, so the node indexes the
same fields for both; ``otel``/``raw`` modes would nest the fields under ``attributes.*`` and index more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _lines import BASE_MS, write_file  # noqa: E402  (benchmarks/_lines.py)
from corrtrace.collector.record import day_of, parse_timestamp_ms  # noqa: E402
from corrtrace.collector.sinks.elasticsearch import template_body  # noqa: E402

from corrtrace.endpoints import backend_url  # noqa: E402

ES_URL = backend_url("ES")
OTELCOL = HERE / "otelcol"
OTELCOL_BIN = OTELCOL / "bin" / "otelcol-bench"
# The checksum database does not list these module versions (see benchmarks/otelcol/README.md); go.sum pins them.
GONOSUMDB = "github.com/open-telemetry/opentelemetry-collector-contrib,go.opentelemetry.io/ebpf-profiler"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {"cpu_per_event_vs_otel": 0.35, "wall_vs_otel": 0.8, "wall_vs_ndjson_ceiling": 1.5}


@dataclass
class Run:
    wall_s: float
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    stored: int = 0
    duplicates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# -- the node ------------------------------------------------------------------------------------------------------
def es() -> httpx.Client:
    return httpx.Client(base_url=ES_URL, timeout=300)


def fresh_prefix(client: httpx.Client) -> str:
    """A new ``<prefix>-*`` with corrtrace's index template (replicas 0, refresh 1 s), so every contender indexes
    into the same mapping."""
    prefix = f"bench-ship-{uuid.uuid4().hex[:8]}"
    client.put(f"/_index_template/{prefix}", json=template_body(prefix)).raise_for_status()
    return prefix


def drop(client: httpx.Client, prefix: str) -> None:
    client.delete(f"/_data_stream/{prefix}-*")
    client.delete(f"/{prefix}-*", params={"expand_wildcards": "all", "ignore_unavailable": "true"})
    client.delete(f"/_index_template/{prefix}")
    client.delete(f"/_index_template/{prefix}-otel")


def count(client: httpx.Client, prefix: str) -> int:
    resp = client.get(f"/{prefix}-*/_count", params={"ignore_unavailable": "true", "allow_no_indices": "true"})
    return int(resp.json().get("count", 0)) if resp.status_code == 200 else 0


def distinct_seqs(client: httpx.Client, prefix: str) -> int:
    """How many different generated lines (``labels.seq``) are stored: stored - distinct = duplicates."""
    client.post(f"/{prefix}-*/_refresh")
    after: dict[str, Any] | None = None
    seen = 0
    while True:
        comp: dict[str, Any] = {"size": 10_000, "sources": [{"seq": {"terms": {"field": "labels.seq"}}}]}
        if after:
            comp["after"] = after
        body = client.post(f"/{prefix}-*/_search", json={"size": 0, "aggs": {"s": {"composite": comp}}}).json()
        agg = body["aggregations"]["s"]
        seen += len(agg["buckets"])
        after = agg.get("after_key")
        if not agg["buckets"] or after is None:
            return seen


def finished(client: httpx.Client, prefix: str, wall: float, proc: Watched | None = None) -> Run:
    """One run's figures: what is stored and how many lines twice (and the shipper's CPU and peak RSS); then
    the run's indices are dropped."""
    stored = count(client, prefix)
    run = Run(
        wall,
        proc.cpu_s if proc else None,
        proc.peak_kb / 1024 if proc else None,
        stored,
        stored - distinct_seqs(client, prefix),
    )
    drop(client, prefix)
    return run


def wait_searchable(
    client: httpx.Client, prefix: str, n: int, start: float, alive: Callable[[], bool], timeout: float
) -> float:
    """Poll ``_count`` until ``n`` documents are searchable; the wall seconds since ``start``."""
    while True:
        if count(client, prefix) >= n:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"{prefix}: only {count(client, prefix)} of {n} documents after {timeout:.0f} s")
        if not alive():
            time.sleep(1.5)  # a finished shipper: one more refresh interval, then it must be all there
            if count(client, prefix) >= n:
                return time.perf_counter() - start
            raise RuntimeError(f"{prefix}: the shipper exited with {count(client, prefix)} of {n} documents")
        time.sleep(0.1)


# -- a shipper process -------------------------------------------------------------------------------------------
class Watched:
    """A child process whose peak RSS is sampled from /proc (VmHWM) and whose CPU time is taken at exit (wait4)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed in reap)
        self._out = out
        self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
        self.peak_kb = 0
        self.cpu_s = 0.0
        self.returncode: int | None = None
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                for row in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                    if row.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(row.split()[1]))
                stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                self.cpu_s = max(self.cpu_s, sum(int(x) for x in stat[11:15]) / CLK_TCK)
            except (OSError, IndexError, ValueError):
                pass
            self._stop.wait(0.05)

    def alive(self) -> bool:
        """Still running (asked without reaping it, so ``wait4`` can read its resource usage at the end)."""
        if self.returncode is not None:
            return False
        return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None

    def reap(self, terminate: bool = False) -> None:
        if terminate and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            self.proc.returncode = self.returncode
            self.cpu_s = max(self.cpu_s, usage.ru_utime + usage.ru_stime)
            # not usage.ru_maxrss: Linux starts a forked child's at its parent's peak (this process holds the
            # parsed documents of the parallel_bulk ceiling), so only the sampled VmHWM is the shipper's own
        except ChildProcessError:  # already reaped by poll(): the sampled figures stand
            self.returncode = self.proc.returncode
        self._stop.set()
        self._sampler.join()
        if self._out is not subprocess.DEVNULL:
            self._out.close()  # type: ignore[union-attr]


def bytecode_env(tmp: Path) -> dict[str, str]:
    """The environment ``corrtrace collect`` runs in: from compiled bytecode, as an installed collector does
    (pip compiles it at install). With PYTHONDONTWRITEBYTECODE set (some sandboxes and CI images set it), every
    run would compile this checkout's modules again (about 0.1 s of CPU); bytecode goes to ``tmp`` instead, so
    the checkout is not written to. ``warm_up`` fills it before any clock starts."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_up(tmp: Path, client: httpx.Client) -> None:
    """One untimed one-line ``collect --once``: compiles every module the timed runs import (bytecode_env)."""
    one = tmp / "warm-up.log"
    with open(tmp / "ship.log", "rb") as fh:
        one.write_bytes(fh.readline())
    run_corrtrace(one, 1, tmp, client, {"workers": 1})


def run_corrtrace(
    path: Path, n: int, tmp: Path, client: httpx.Client, options: dict[str, Any], malloc_tune: bool = True
) -> Run:
    prefix = fresh_prefix(client)
    data = tmp / f"data-{prefix}"
    config = tmp / f"{prefix}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "paths": [str(path)],
                    "data_dir": str(data),
                    "sinks": ["elasticsearch"],
                    "es_url": ES_URL,
                    "index_prefix": prefix,
                    **options,
                }
            }
        )
    )
    argv = [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config), "--once"]
    if not malloc_tune:  # the same command with collector/cli.py's mallopt call made a no-op
        argv[1:3] = [
            "-c",
            "import sys, corrtrace.collector.cli as c; c._tune_malloc = lambda: None; "
            "from corrtrace.cli import main; sys.argv[0] = 'corrtrace'; main()",
        ]
    start = time.perf_counter()
    proc = Watched(argv, env=bytecode_env(tmp), log=tmp / f"{prefix}.log")
    try:
        wall = wait_searchable(client, prefix, n, start, proc.alive, timeout=60 + n / 1000)
    finally:
        proc.reap()
    if proc.returncode != 0:
        raise RuntimeError(f"corrtrace collect exited {proc.returncode}: {(tmp / f'{prefix}.log').read_text()[-2000:]}")
    shutil.rmtree(data, ignore_errors=True)
    return finished(client, prefix, wall, proc)


OTEL_CONFIG = """
receivers:
  filelog:
    include:
      - ${env:BENCH_FILE}
    start_at: beginning
    max_log_size: 1MiB
    operators:
      - type: json_parser
        timestamp:
          parse_from: attributes["@timestamp"]
          layout_type: gotime
          layout: "2006-01-02T15:04:05.000Z"
      - type: remove
        field: attributes["@timestamp"]
      - type: move
        from: attributes.message
        to: body
processors:
  transform:
    log_statements:
      - context: scope
        statements:
          - set(attributes["elastic.mapping.mode"], "ecs")
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  elasticsearch:
    endpoint: ${env:BENCH_ES_URL}
    logs_index: ${env:BENCH_INDEX}
    sending_queue:
      batch:
        flush_timeout: 500ms  # corrtrace's flush_interval (the default, 10 s, would only add idle time)
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [transform, batch]
      exporters: [elasticsearch]
"""


def go_binary() -> str | None:
    return shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if os.access(p, os.X_OK)), None)


def build_otelcol() -> Path | None:
    """Build benchmarks/otelcol/ (once; again when its sources change) into its ignored ``bin/``."""
    sources = [OTELCOL / name for name in ("main.go", "go.mod", "go.sum")]
    if OTELCOL_BIN.exists() and all(OTELCOL_BIN.stat().st_mtime >= p.stat().st_mtime for p in sources):
        return OTELCOL_BIN
    go = go_binary()
    if go is None:
        print(
            "otelcol: no Go toolchain on PATH (or /usr/local/go/bin): the OpenTelemetry Collector is skipped",
            flush=True,
        )
        return None
    print("otelcol: building the OpenTelemetry Collector from Go modules (several minutes the first time)", flush=True)
    env = {**os.environ, "GONOSUMDB": GONOSUMDB, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    t = time.perf_counter()
    subprocess.run(
        ["nice", "-n", "10", go, "build", "-trimpath", "-o", str(OTELCOL_BIN), "."], cwd=OTELCOL, env=env, check=True
    )
    print(f"otelcol: built in {time.perf_counter() - t:.0f} s", flush=True)
    return OTELCOL_BIN


def run_otel(binary: Path, path: Path, n: int, tmp: Path, client: httpx.Client) -> Run:
    prefix = fresh_prefix(client)
    # the exporter writes with require_data_stream: its index is a data stream with corrtrace's template
    stream = {**template_body(prefix), "index_patterns": [f"{prefix}-otel"], "priority": 300, "data_stream": {}}
    client.put(f"/_index_template/{prefix}-otel", json=stream).raise_for_status()
    config = tmp / f"{prefix}-otel.yaml"
    config.write_text(OTEL_CONFIG)
    env = {**os.environ, "BENCH_FILE": str(path), "BENCH_ES_URL": ES_URL, "BENCH_INDEX": f"{prefix}-otel"}
    start = time.perf_counter()
    proc = Watched([str(binary), "--config", f"file:{config}"], env=env, log=tmp / f"{prefix}-otel.log")
    try:
        wall = wait_searchable(client, prefix, n, start, proc.alive, timeout=60 + n / 1000)
        time.sleep(1.0)  # anything still in flight (a duplicate) lands before it is counted
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: {(tmp / f'{prefix}-otel.log').read_text()[-2000:]}") from None
    finally:
        proc.reap(terminate=True)
    return finished(client, prefix, wall, proc)


# -- the engine's ceilings -----------------------------------------------------------------------------------------
def run_ndjson(path: Path, n: int, client: httpx.Client, threads: int = 2, body_bytes: int = 5 << 20) -> Run:
    """Bodies built before the clock starts (create + the line as it is), posted by ``threads`` threads."""
    prefix = fresh_prefix(client)
    bodies: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    with open(path, "rb") as fh:
        for i, line in enumerate(fh):
            day = day_of(parse_timestamp_ms(orjson.loads(line)["@timestamp"]) or BASE_MS)
            parts.append(b'{"create":{"_index":"%s-%s","_id":"%d"}}\n' % (prefix.encode(), day.encode(), i))
            parts.append(line)
            size += len(line) + 60
            if size >= body_bytes:
                bodies.append(b"".join(parts))
                parts, size = [], 0
    if parts:
        bodies.append(b"".join(parts))
    errors: list[str] = []

    def post(chunk: list[bytes]) -> None:
        with es() as own:
            for body in chunk:
                resp = own.post(
                    "/_bulk",
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                    params={"filter_path": "errors"},
                )
                if resp.status_code != 200 or resp.json().get("errors"):
                    errors.append(resp.text[:300])

    start = time.perf_counter()
    workers = [threading.Thread(target=post, args=(bodies[k::threads],)) for k in range(threads)]
    for w in workers:
        w.start()
    wall = wait_searchable(client, prefix, n, start, lambda: any(w.is_alive() for w in workers), 60 + n / 1000)
    for w in workers:
        w.join()
    if errors:
        raise RuntimeError(f"ndjson ceiling: bulk errors: {errors[0]}")
    return finished(client, prefix, wall)


def run_parallel_bulk(path: Path, n: int, client: httpx.Client) -> Run:
    """``elasticsearch.helpers.parallel_bulk`` (its defaults: 4 threads, 500 documents a request) fed documents
    parsed before the clock starts."""
    from elasticsearch import Elasticsearch
    from elasticsearch.helpers import parallel_bulk

    prefix = fresh_prefix(client)
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    actions = [
        {
            "_op_type": "create",
            "_index": f"{prefix}-{day_of(parse_timestamp_ms(d['@timestamp']) or 0)}",
            "_id": str(i),
            "_source": d,
        }
        for i, d in enumerate(docs)
    ]
    del docs
    node = Elasticsearch(ES_URL, request_timeout=300)
    start = time.perf_counter()
    failed = sum(1 for ok, _ in parallel_bulk(node, actions, raise_on_error=False) if not ok)
    wall = wait_searchable(client, prefix, n, start, lambda: False, 60 + n / 1000)
    node.close()
    if failed:
        raise RuntimeError(f"parallel_bulk: {failed} documents failed")
    return finished(client, prefix, wall)


# -- report ------------------------------------------------------------------------------------------------------
def summary(runs: list[Run], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": len(runs),
        "wall_s": statistics.median(r.wall_s for r in runs),
        "wall_s_range": [min(r.wall_s for r in runs), max(r.wall_s for r in runs)],
        "events_per_s": n / statistics.median(r.wall_s for r in runs),
        "stored": min(r.stored for r in runs),
        "duplicates": max(r.duplicates for r in runs),
    }
    if runs[0].cpu_s is not None:
        cpu = [r.cpu_s or 0.0 for r in runs]
        out.update(
            {
                "cpu_s": statistics.median(cpu),
                "cpu_us_per_event": statistics.median(cpu) / n * 1e6,
                "cpu_us_per_event_range": [min(cpu) / n * 1e6, max(cpu) / n * 1e6],
                "peak_rss_mb": statistics.median(r.peak_rss_mb or 0.0 for r in runs),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="corrtrace runs, one per value (collector.workers)")
    parser.add_argument("--no-otel", action="store_true", help="skip the OpenTelemetry Collector")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the NDJSON and parallel_bulk ceilings")
    parser.add_argument(
        "--malloc", action="store_true", help="also run corrtrace with collector/cli.py's mallopt tuning turned off"
    )
    args = parser.parse_args()
    n = args.lines
    binary = None if args.no_otel else build_otelcol()
    contenders: dict[str, Callable[[Path, Path, httpx.Client], Run]] = {}
    for w in (int(x) for x in args.workers.split(",")):
        options = {"workers": w}
        contenders[f"corrtrace_w{w}"] = lambda p, t, c, o=options: run_corrtrace(p, n, t, c, o)
    if args.malloc:
        contenders["corrtrace_no_mallopt"] = lambda p, t, c: run_corrtrace(p, n, t, c, {}, malloc_tune=False)
    if binary is not None:
        contenders["otelcol"] = lambda p, t, c: run_otel(binary, p, n, t, c)
    if not args.no_ceilings:
        contenders["ndjson_ceiling"] = lambda p, t, c: run_ndjson(p, n, c)
        contenders["parallel_bulk"] = lambda p, t, c: run_parallel_bulk(p, n, c)
    results: dict[str, list[Run]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="corrtrace-shipping-") as tmpdir, es() as client:
        tmp = Path(tmpdir)
        path = tmp / "ship.log"
        write_file(path, n)
        print(
            f"file: {n:,} lines, {path.stat().st_size / 1e6:.0f} MB; {args.runs} alternating rounds; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if any(name.startswith("corrtrace") for name in contenders):
            warm_up(tmp, client)
        for round_no in range(args.runs):
            names = list(contenders)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]  # rotate who goes first
            for name in names:
                run = contenders[name](path, tmp, client)
                results[name].append(run)
                print(
                    f"  round {round_no + 1} {name}: {run.wall_s:.1f} s"
                    + (f", {run.cpu_s:.1f} CPU s, {run.peak_rss_mb:.0f} MB" if run.cpu_s is not None else "")
                    + f", {run.stored:,} stored, {run.duplicates} duplicates",
                    flush=True,
                )
    report = {name: summary(runs, n) for name, runs in results.items()}
    for name, figures in report.items():
        print(f"{name}: " + json.dumps(figures, default=lambda x: round(x, 3)), flush=True)
    ours = report.get("corrtrace_w2") or next((v for k, v in report.items() if k.startswith("corrtrace_w")), None)
    ratios: dict[str, Any] = {"lines": n, "load_average": os.getloadavg()[0], "targets": TARGETS}
    if ours and "otelcol" in report:
        ratios["cpu_per_event_vs_otel"] = ours["cpu_us_per_event"] / report["otelcol"]["cpu_us_per_event"]
        ratios["wall_vs_otel"] = ours["wall_s"] / report["otelcol"]["wall_s"]
    if ours and "ndjson_ceiling" in report:
        ratios["wall_vs_ndjson_ceiling"] = ours["wall_s"] / report["ndjson_ceiling"]["wall_s"]
        ratios["wall_vs_parallel_bulk"] = ours["wall_s"] / report["parallel_bulk"]["wall_s"]
    best = min((k for k in report if k.startswith("corrtrace_w")), key=lambda k: report[k]["wall_s"], default=None)
    if best and "ndjson_ceiling" in report:
        ratios["best_workers"] = best
        ratios["best_wall_vs_ndjson_ceiling"] = report[best]["wall_s"] / report["ndjson_ceiling"]["wall_s"]
        if "otelcol" in report:
            ratios["best_wall_vs_otel"] = report[best]["wall_s"] / report["otelcol"]["wall_s"]
    ratios["met"] = {k: ratios[k] <= v for k, v in TARGETS.items() if k in ratios}
    print("ratios: " + json.dumps(ratios, default=lambda x: round(x, 3)), flush=True)
    if ours and "ndjson_ceiling" in report:  # what benchmarks/capacity.py reads
        print(
            "capacity: "
            + json.dumps(
                {
                    "collector_events_per_s": round(ours["events_per_s"]),
                    "collector_cpu_us_per_event": round(ours["cpu_us_per_event"], 2),
                    "node_docs_per_s": round(report["ndjson_ceiling"]["events_per_s"]),
                }
            ),
            flush=True,
        )
    return 0 if all(r.stored == n and r.duplicates == 0 for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
