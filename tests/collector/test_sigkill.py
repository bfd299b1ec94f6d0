"""SIGKILL the collector (a real subprocess) at 10 random points while it ships 100,000 events to the real
Elasticsearch node and to CloudWatch Logs (moto), restart it each time, then check: every event in
Elasticsearch exactly once (ids checked), every event in CloudWatch at least once, repeats bounded."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml
from corrtrace.collector.sinks.cloudwatch import logs_client
from corrtrace.collector.sources.tail import fingerprint_of

from tests.collector.cwutil import all_messages
from tests.collector.esutil import exactly_once, stored
from tests.collector.helpers import line

TOTAL = 100_000
KILLS = 10


def _checkpoint_offset(path: Path) -> int:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return 0
    return max((int(v["offset"]) for v in data["sources"].values()), default=0)


def _spawn(config: Path, log: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config), "--once"],
        stdout=log,
        stderr=log,
        env=env,
    )


def test_sigkill_at_random_points_loses_nothing(
    es: Any, es_url: str, index_prefix: str, moto_url: str, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("CORRTRACE_SIGKILL_SEED", "0")) or None)
    log_path = tmp_path / "app.log"
    offsets = []
    with open(log_path, "wb") as fh:
        pos = 0
        for i in range(TOTAL):
            data = line(i, service="orders" if i % 3 else "payment")
            offsets.append(pos)
            fh.write(data)
            pos += len(data)
    size = log_path.stat().st_size
    data_dir = tmp_path / "data"
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "paths": [str(log_path)],
                    "data_dir": str(data_dir),
                    "sinks": ["elasticsearch", "cloudwatch"],
                    "es_url": es_url,
                    "index_prefix": index_prefix,
                    "cloudwatch_endpoint_url": moto_url,
                    "cloudwatch_region": "us-east-1",
                    "batch_max_events": 4000,
                    "batch_max_bytes": 1 << 20,
                    "backoff_initial": 0.05,
                    "backoff_max": 0.5,
                }
            }
        )
    )
    thresholds = sorted(rng.uniform(0.02, 0.85) * size for _ in range(KILLS))
    checkpoint = data_dir / "checkpoint.json"
    kills = []
    with open(tmp_path / "collector.log", "ab") as out:
        for threshold in thresholds:
            start = _checkpoint_offset(checkpoint)
            target = max(threshold, start + 1)  # each run ships at least one batch before it is killed
            proc = _spawn(config, out)
            deadline = time.monotonic() + 90
            while _checkpoint_offset(checkpoint) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.25))  # land anywhere inside the next batch
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append(_checkpoint_offset(checkpoint))
            proc.wait()
        proc = _spawn(config, out)
        assert proc.wait(timeout=180) == 0, (tmp_path / "collector.log").read_text()[-3000:]
    assert len(kills) >= KILLS - 1  # (the last threshold can be passed by a fast finish)
    assert _checkpoint_offset(checkpoint) == size

    pairs = stored(es, index_prefix)
    exactly_once(pairs, TOTAL)
    with open(log_path, "rb") as fh:
        source = fingerprint_of(fh.fileno())
    assert {doc_id for doc_id, _ in pairs} == {f"{source}-{o}" for o in offsets}  # ids: source identity + offset

    counts = Counter(orjson.loads(m)["labels"]["seq"] for m in all_messages(logs_client(moto_url)))
    assert set(counts) == set(range(TOTAL))  # at least once
    repeats = sum(c - 1 for c in counts.values())
    print(f"kills at checkpoint offsets {kills} of {size}; CloudWatch repeats {repeats}")
    per_call = 1_048_576 // (min(offsets[i + 1] - offsets[i] for i in range(TOTAL - 1)) - 1 + 26)
    assert repeats <= len(kills) * per_call  # at most the one PutLogEvents call in flight at each kill
