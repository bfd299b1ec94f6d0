"""The collector on a REAL 3-node Elasticsearch cluster (``scripts/services up es-cluster``) that loses nodes
mid-ship (collector/README.md, "A cluster of nodes").

One long-running collector (``es_url`` = the three nodes, 1 replica) tails a file the test fills in three parts,
200k events in all. The sequence keeps a quorum (2 of the 3 master-eligible nodes) at every moment:

1. while part 1 ships, once every copy of the index has started, a node that is NOT the master and holds one
   is SIGKILLed, and the rest of part 1 is written after it (so the collector meets the dead node however fast
   it ships); the test waits until the other two see a 2-node cluster;
2. while part 2 ships, that node is restarted with its data and rejoins; the test waits for green (every
   replica recovered), so no shard lives on the master alone;
3. while part 3 ships, the elected master is SIGKILLed (the rest of part 3 written after it); the test waits
   until the other two have elected a new one;
4. every event is stored exactly once, the collector named each lost node once and kept going, and
   ``corrtrace search`` answers while the old master is still down;
5. the old master is restarted, rejoins, and the next collector run ships to it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.collector.esutil import exactly_once, stored
from tests.collector.helpers import write_lines

ROOT = Path(__file__).resolve().parents[2]
# node N listens on the same base port as scripts/elasticsearch/es-cluster.sh uses (ES_CLUSTER_HTTP_BASE), so a
# second checkout can run its cluster beside this one
HTTP_BASE = int(os.environ.get("ES_CLUSTER_HTTP_BASE") or 9220)
NODES = {n: f"http://127.0.0.1:{HTTP_BASE + n}" for n in (1, 2, 3)}
TOTAL = 200_000
PARTS = (35_000, 35_000, 60_000, 35_000, 35_000)  # 1 | kill | 1 rest | 2 (restart) | 3 | kill master | 3 rest
RESTART_TIMEOUT = 600  # a node restart on 2 loaded cores has taken 80 s; the script waits up to this long


def services(*args: str, timeout: float = RESTART_TIMEOUT + 60) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([str(ROOT / "scripts" / "services"), *args], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"scripts/services {' '.join(args)}: {run.stdout[-1500:]}{run.stderr[-1500:]}"
    return run


def wait_for(check: Callable[[], Any], what: str, timeout: float = 180.0) -> Any:
    """Poll ``check`` until it returns something truthy (errors count as not yet), at most ``timeout`` s."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def get(node: int, path: str, *, answers: tuple[int, ...] = (), **params: Any) -> Any:
    """The JSON body of a GET on ``node``; an error status raises unless ``answers`` names it (its body is the
    answer: 408, a health wait that timed out)."""
    resp = httpx.get(NODES[node] + path, params=params, timeout=60)
    if resp.status_code not in answers:
        resp.raise_for_status()
    return resp.json()


def health(node: int, nodes: int, status: str = "yellow", index: str = "") -> bool:
    """True once ``node`` sees ``nodes`` nodes, a master and at least ``status`` (for ``index`` alone if named);
    a ValueError saying what it sees instead (wait_for keeps it as the last error)."""
    found = get(
        node,
        f"/_cluster/health/{index}",
        answers=(408,),
        wait_for_nodes=str(nodes),
        wait_for_status=status,
        timeout="20s",
    )
    if found["timed_out"] or found["number_of_nodes"] != nodes:
        seen = {k: found.get(k) for k in ("status", "number_of_nodes", "initializing_shards", "unassigned_shards")}
        raise ValueError(f"node-{node} sees {seen}")
    return True


def master(node: int) -> int:
    """The elected master's number, as ``node`` sees it (an error while there is none)."""
    return int(get(node, "/_cat/master", format="json")[0]["node"].removeprefix("node-"))


def holders(node: int, pattern: str) -> set[int]:
    """The nodes holding a started copy of a shard of ``pattern``."""
    rows = get(node, f"/_cat/shards/{pattern}", format="json", h="node,state")
    return {int(r["node"].removeprefix("node-")) for r in rows if r["state"] == "STARTED"}


def count(node: int, pattern: str) -> int:
    """Documents searchable (the index refreshes every second; forcing refreshes would slow the cluster)."""
    return int(get(node, f"/{pattern}/_count")["count"])


def running() -> set[int]:
    up = set()
    for n in NODES:
        try:
            httpx.get(NODES[n], timeout=5).raise_for_status()
            up.add(n)
        except httpx.HTTPError:
            pass
    return up


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """The 3-node cluster, started through scripts/services if it is not (CI starts it in the background
    early; the script serialises on its lock and waits), all three nodes in, green."""
    services("up", "es-cluster", timeout=900)
    for n in set(NODES) - running():
        services("start", "es-cluster", str(n))
    wait_for(lambda: health(1, 3, "green"), "a green 3-node cluster")
    yield
    for n in set(NODES) - running():  # leave it whole for the next run, whatever failed
        services("start", "es-cluster", str(n))


def collector_config(tmp_path: Path, name: str, prefix: str, paths: list[str], **extra: Any) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "sinks": ["elasticsearch"],
                    "es_url": list(NODES.values()),
                    "index_prefix": prefix,
                    "data_dir": str(tmp_path / f"data-{name}"),
                    "paths": paths,
                    "batch_max_events": 5000,
                    "flush_interval": 0.2,
                    "backoff_initial": 0.2,
                    "backoff_max": 2.0,
                    "es_timeout": 120.0,
                    "retention_days": 0,
                    **extra,
                }
            }
        )
    )
    return config


@dataclass
class Outage:
    prefix: str
    data_node: int  # killed first (not the master, holds a copy of the index)
    old_master: int  # killed second, still down when the fixture returns
    new_master: int
    log: str  # the collector's stderr
    stored: list[tuple[str, int]]
    search: subprocess.CompletedProcess[str]
    config: Path
    seen_mid_run: list[int] = field(default_factory=list)  # documents stored when each kill happened


@pytest.fixture(scope="module")
def outage(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    tmp_path = tmp_path_factory.mktemp("cluster")
    prefix = f"t-cluster-{uuid.uuid4().hex[:8]}"
    pattern = f"{prefix}-*"
    app = tmp_path / "app.log"
    app.touch()
    config = collector_config(tmp_path, "outage", prefix, [str(app)])
    stderr = tmp_path / "collector.err"
    bounds = [sum(PARTS[:i]) for i in range(len(PARTS) + 1)]
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    restart: subprocess.Popen[bytes] | None = None
    seen: list[int] = []
    try:
        first_master = wait_for(lambda: master(1), "the elected master")
        # 1. part 1 ships; a non-master node holding a copy of the index dies mid-ship
        write_lines(app, range(bounds[0], bounds[1]))
        wait_for(lambda: count(first_master, pattern) >= 5_000, "the first documents")
        # every shard's replica started first: a node holding the only started copy of a shard (its replica still
        # recovering) would take the index red with it, and nothing could write until it came back
        wait_for(lambda: health(first_master, 3, "green", pattern), "every copy of the index started")
        data_node = min(
            wait_for(
                lambda: holders(first_master, pattern) - {first_master},
                "a copy of the index on a node that is not the master",
            )
        )
        seen.append(count(first_master, pattern))
        services("kill", "es-cluster", str(data_node))
        write_lines(app, range(bounds[1], bounds[2]))
        alive = [n for n in NODES if n != data_node]
        wait_for(lambda: health(alive[0], 2), f"the cluster without node-{data_node}")
        # 2. part 2 ships while the node restarts and rejoins
        restart = subprocess.Popen(
            [str(ROOT / "scripts" / "services"), "start", "es-cluster", str(data_node)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        write_lines(app, range(bounds[2], bounds[3]))
        assert restart.wait(timeout=RESTART_TIMEOUT + 60) == 0, f"node-{data_node} did not restart"
        wait_for(
            lambda: health(first_master, 3, "green"), f"node-{data_node} back and every replica recovered", timeout=300
        )
        # 3. part 3 ships; the elected master dies mid-ship
        old_master = master(first_master)
        done_before = count(old_master, pattern)
        write_lines(app, range(bounds[3], bounds[4]))
        wait_for(lambda: count(old_master, pattern) >= done_before + 5_000, "part 3 under way")
        wait_for(lambda: health(old_master, 3, "green", pattern), "every copy of the index started (a new day's too)")
        seen.append(count(old_master, pattern))
        services("kill", "es-cluster", str(old_master))
        write_lines(app, range(bounds[4], bounds[5]))
        survivors = [n for n in NODES if n != old_master]
        new_master = wait_for(lambda: (m := master(survivors[0])) != old_master and m, "a new master", 120)
        wait_for(lambda: health(survivors[0], 2), "the 2-node cluster after the master died")
        # 4. everything lands exactly once; search answers with the old master still down
        wait_for(lambda: count(new_master, pattern) >= TOTAL, f"{TOTAL} documents", timeout=900)
        assert proc.poll() is None, f"the collector exited: {stderr.read_text()[-3000:]}"
        from elasticsearch import Elasticsearch

        with Elasticsearch([NODES[n] for n in survivors], request_timeout=120) as es:
            pairs = stored(es, prefix)
        search = subprocess.run(
            [sys.executable, "-m", "corrtrace.cli", "search", "req-7", "--config", str(config), "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except BaseException:
        print(f"collector's stderr (tail):\n{stderr.read_text()[-6000:]}")  # shown with the failure
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        if restart is not None and restart.poll() is None:
            restart.kill()
    yield Outage(prefix, data_node, old_master, new_master, stderr.read_text(), pairs, search, config, seen)
    httpx.delete(f"{NODES[new_master]}/{pattern}", timeout=120)
    httpx.delete(f"{NODES[new_master]}/_index_template/{prefix}", timeout=120)


def test_200k_events_stored_exactly_once_through_a_data_node_and_a_master_kill(outage: Outage) -> None:
    assert outage.data_node != outage.old_master != outage.new_master
    assert all(0 < n < TOTAL for n in outage.seen_mid_run), outage.seen_mid_run  # both kills hit a running ship
    exactly_once(outage.stored, TOTAL)


def test_the_collector_says_once_which_node_it_lost_and_keeps_going(outage: Outage) -> None:
    lost = re.findall(r"lost search node (\S+);", outage.log)
    assert sorted(lost) == sorted([NODES[outage.data_node], NODES[outage.old_master]]), outage.log[-3000:]
    assert "Traceback" not in outage.log, outage.log[-3000:]


def test_search_answers_while_one_node_is_down(outage: Outage) -> None:
    assert outage.search.returncode == 0, outage.search.stderr[-2000:]
    found = orjson.loads(outage.search.stdout)
    assert len(found) == TOTAL // 50 and {e["correlation_id"] for e in found} == {"req-7"}


def test_a_restarted_node_rejoins_and_the_next_run_ships_to_it(outage: Outage, tmp_path: Path) -> None:
    node = outage.old_master
    services("start", "es-cluster", str(node))
    wait_for(lambda: health(node, 3, "green"), f"node-{node} back in a green 3-node cluster", timeout=300)
    assert master(node) in NODES
    prefix = f"t-cluster-next-{uuid.uuid4().hex[:8]}"  # not under the first prefix: templates may not overlap
    app = tmp_path / "next.log"
    write_lines(app, range(3000))
    # a copy on every node; 30 bulks of 100, so the pool's round robin reaches every live node (one 3,000-event
    # bulk and the template request could both go to the other two)
    config = collector_config(tmp_path, "next", prefix, [], index_replicas=2, batch_max_events=100)
    assert _client_requests(node) == 0  # nothing but this test's probes has talked to it since it restarted
    run = subprocess.run(
        [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config), "--once", str(app)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "lost search node" not in run.stderr
    assert _client_requests(node) > 0  # the collector sent requests to the restarted node
    httpx.post(f"{NODES[node]}/{prefix}-*/_refresh", timeout=60).raise_for_status()
    local = get(node, f"/{prefix}-*/_count", preference="_only_local")
    assert local["count"] == 3000 and local["_shards"]["successful"] >= 1  # its own copy holds every event
    httpx.delete(f"{NODES[node]}/{prefix}-*", timeout=120)
    httpx.delete(f"{NODES[node]}/_index_template/{prefix}", timeout=120)


def _client_requests(node: int) -> int:
    """Requests ``node`` has served to Python Elasticsearch clients (the collector; the test probes with httpx)."""
    stats = next(iter(get(node, "/_nodes/_local/stats/http")["nodes"].values()))["http"]
    return sum(c.get("request_count", 0) for c in stats["clients"] if c.get("agent", "").startswith("elasticsearch-py"))
