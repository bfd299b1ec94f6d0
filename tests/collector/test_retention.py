"""Retention: CloudWatch retention policies (moto over HTTP), ``corrtrace prune`` on the real Elasticsearch and
OpenSearch nodes (own daily indices only, ``--dry-run``), the long-running collector pruning by itself, and
the embedded store pruned by age and capped by size."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from corrtrace.collector import CloudWatchSink
from corrtrace.collector.record import day_of, make_record
from corrtrace.collector.retention import cloudwatch_days, expired_indices
from corrtrace.collector.sinks.cloudwatch import logs_client
from corrtrace.collector.sinks.embedded import EmbeddedStore

from tests.collector.helpers import event, line, write_lines

DAY_MS = 86_400_000
NOW_MS = int(time.time() * 1000)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corrtrace.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _days_ago(n: int) -> str:
    return day_of(NOW_MS - n * DAY_MS)


def test_expired_indices_match_only_the_own_daily_names() -> None:
    names = [
        "logs-a-2020.01.01",
        "logs-a-2020.13.01",
        "logs-a-archive",
        "logs-a-b-2020.01.01",
        "logs-ab-2020.01.01",
        f"logs-a-{_days_ago(0)}",
        f"logs-a-{_days_ago(3)}",
        f"logs-a-{_days_ago(2)}",
    ]
    # an index is old when its whole day ended more than `days` days ago
    assert expired_indices(names, "logs-a", 2) == ["logs-a-2020.01.01", f"logs-a-{_days_ago(3)}"]
    assert expired_indices(names, "logs-a", 0) == []
    assert [cloudwatch_days(d) for d in (1, 2, 30, 31, 400, 5000)] == [1, 3, 30, 60, 400, 3653]


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_prune_deletes_only_its_own_old_daily_indices(
    flavor: str, es_url: str, index_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = es_url if flavor == "elasticsearch" else request.getfixturevalue("os_url")
    old = [f"{index_prefix}-{_days_ago(31)}"]
    kept = [
        f"{index_prefix}-{_days_ago(29)}",
        f"{index_prefix}-archive",
        f"{index_prefix}-other-{_days_ago(400)}",
        f"{index_prefix}x-{_days_ago(400)}",
    ]
    try:
        for name in old + kept:
            httpx.put(f"{url}/{name}", json={"settings": {"number_of_replicas": 0}}, timeout=60).raise_for_status()
        config = tmp_path / "c.yaml"
        config.write_text(
            yaml.safe_dump(
                {"collector": {"sinks": [flavor], "es_url": url, "index_prefix": index_prefix, "retention_days": 30}}
            )
        )
        dry = _run("prune", "--config", str(config), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines() == [f"{flavor}: would remove {name}" for name in sorted(old)]
        listed = httpx.get(f"{url}/_cat/indices/{index_prefix}*", params={"h": "index"}, timeout=30).text.split()
        assert sorted(listed) == sorted(old + kept)  # a dry run removes nothing

        done = _run("prune", "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"{flavor}: removed {name}" for name in sorted(old)]
        listed = httpx.get(f"{url}/_cat/indices/{index_prefix}*", params={"h": "index"}, timeout=30).text.split()
        assert sorted(listed) == sorted(kept)
    finally:
        httpx.delete(f"{url}/{index_prefix}*", timeout=60)


def test_the_long_running_collector_prunes_when_it_starts(
    es: Any, es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    es.indices.create(index=f"{index_prefix}-{_days_ago(10)}")
    app = tmp_path / "app.log"
    write_lines(app, range(10), ts=NOW_MS)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "paths": [str(app)],
                    "data_dir": str(tmp_path / "data"),
                    "sinks": ["elasticsearch"],
                    "es_url": es_url,
                    "index_prefix": index_prefix,
                    "es_retention_days": 7,
                }
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while es.indices.exists(index=f"{index_prefix}-{_days_ago(10)}"):
            assert time.monotonic() < deadline and proc.poll() is None, "the old index was not pruned"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert f"retention: elasticsearch removed {index_prefix}-{_days_ago(10)}" in err
    assert es.indices.exists(index=f"{index_prefix}-{day_of(NOW_MS)}")  # today's, just written, stays


def test_cloudwatch_groups_get_a_retention_policy_and_existing_ones_a_warning(
    moto_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = logs_client(moto_url)
    logs.create_log_group(logGroupName="/corrtrace/old")
    logs.put_retention_policy(logGroupName="/corrtrace/old", retentionInDays=7)
    app = tmp_path / "app.log"
    with open(app, "wb") as fh:
        for i in range(6):
            doc = event(i, ts=NOW_MS - 1000)
            doc["service"] = {"name": "api", "environment": "new" if i % 2 else "old"}
            fh.write(orjson.dumps(doc) + b"\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "sinks": ["cloudwatch"],
                    "data_dir": str(tmp_path / "data"),
                    "cloudwatch_endpoint_url": moto_url,
                    "cloudwatch_region": "us-east-1",
                    "cloudwatch_retention_days": 10,
                }
            }
        )
    )
    run = _run("collect", "--config", str(config), "--once", str(app))
    assert run.returncode == 0, run.stderr
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"]}
    assert groups == {"/corrtrace/new": 14, "/corrtrace/old": 7}  # 10 rounded up to a value CloudWatch takes
    assert run.stderr.count("log group /corrtrace/old exists with retention 7 days; corrtrace would set 14") == 1


def test_embedded_store_is_pruned_by_age_then_capped_by_size_oldest_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EmbeddedStore(tmp_path / "store")
    records = [
        make_record("src", i, i + 1, line(i, ts=NOW_MS - (40 - i % 40) * DAY_MS // 4, pad=400))[0] for i in range(4000)
    ]
    store.deliver(records)
    ages = sorted(r.ts for r in records)
    assert store.prune(7, dry_run=True, now_ms=NOW_MS) and store.count() == 4000
    caplog.set_level(logging.INFO, "corrtrace.collector.embedded")
    removed = store.prune(7, now_ms=NOW_MS)
    older = sum(1 for ts in ages if ts < NOW_MS - 7 * DAY_MS)
    assert removed == [f"{older} events older than 7 days"] and store.count() == 4000 - older
    assert f"removed {older} events older than 7 days" in caplog.text

    store.max_bytes = store.used_bytes() // 2
    kept_before = sorted(r.ts for r in records if r.ts >= NOW_MS - 7 * DAY_MS)
    removed = store.prune(7, now_ms=NOW_MS)
    assert len(removed) == 1 and "oldest events to stay under" in removed[0]
    assert store.used_bytes() <= store.max_bytes
    left = [row[0] for row in store._db.execute("SELECT ts FROM events ORDER BY ts")]
    assert left == kept_before[len(kept_before) - len(left) :]  # the newest survive
    store.close()


def test_cloudwatch_sink_without_retention_leaves_groups_alone(moto_url: str, tmp_path: Path) -> None:
    logs = logs_client(moto_url)
    sink = CloudWatchSink(logs)
    app = tmp_path / "a.log"
    write_lines(app, range(3), ts=NOW_MS)
    from corrtrace.collector import ship_files

    ship_files([app], [sink])
    assert [g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"]] == [None]


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_a_native_lifecycle_on_a_node_without_one_is_one_line_and_loses_nothing(
    flavor: str, es_url: str, index_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Neither node here has ILM/ISM (collector/README.md, "Operating it"): asking for it stops the collector with
    one line naming the setting, before anything is stored, dead-lettered or checkpointed."""
    url = es_url if flavor == "elasticsearch" else request.getfixturevalue("os_url")
    app = tmp_path / "app.log"
    write_lines(app, range(5), ts=NOW_MS)
    config = tmp_path / "c.yaml"

    def collect(lifecycle: str) -> subprocess.CompletedProcess[str]:
        settings = {
            "sinks": [flavor],
            "es_url": url,
            "index_prefix": index_prefix,
            "data_dir": str(tmp_path / "data"),
            "es_lifecycle": lifecycle,
        }
        config.write_text(yaml.safe_dump({"collector": settings}))
        return _run("collect", "--once", "--config", str(config), str(app))

    try:
        native = collect("native")
        assert native.returncode == 2, native.stderr
        assert "Traceback" not in native.stderr
        said = [text for text in native.stderr.splitlines() if "es_lifecycle" in text]
        engine = "ILM" if flavor == "elasticsearch" else "ISM"
        assert len(said) == 1 and f"no {engine}" in said[0], native.stderr
        dead = tmp_path / "data" / "dead-letters.jsonl"
        assert not dead.exists() or not dead.read_text()

        pruned = collect("prune")  # the same data dir: every line is still to ship
        assert pruned.returncode == 0, pruned.stderr
        httpx.post(f"{url}/{index_prefix}-*/_refresh", timeout=60)
        count = httpx.get(f"{url}/{index_prefix}-*/_count", timeout=60).json()["count"]
        assert count == 5
    finally:
        httpx.delete(f"{url}/{index_prefix}*", timeout=60)
