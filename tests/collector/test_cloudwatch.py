"""The CloudWatch Logs sink: transport against moto over HTTP, limits checked by the batcher tests."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from corrtrace.collector import Backoff, CloudWatchSink, CwLimits, DeadLetters, search_events, ship_files
from corrtrace.collector.sinks.cloudwatch import logs_client

from tests.collector.cwutil import all_messages, throttle_puts
from tests.collector.faultproxy import FaultProxy
from tests.collector.helpers import BASE_MS, line, write_lines

FAST = Backoff(0.02, 0.3)


def _seqs(messages: list[str]) -> Counter[int]:
    return Counter(orjson.loads(m)["labels"]["seq"] for m in messages)


def test_groups_and_streams_are_created_and_everything_lands(moto_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    with open(path, "wb") as fh:
        for i in range(6000):
            fh.write(line(i, service="orders" if i % 2 else "payment", pad=200))
    logs = logs_client(moto_url)
    sink = CloudWatchSink(logs, backoff=FAST)
    ship_files([path], [sink])
    streams = logs.describe_log_streams(logGroupName="/corrtrace/test")["logStreams"]
    assert sorted(s["logStreamName"] for s in streams) == ["orders/h1", "payment/h1"]
    assert _seqs(all_messages(logs)) == Counter(range(6000))
    assert sink.stats.requests >= 4  # ~1.6 MB: cut at the 1 MiB limit, per stream


def test_oversized_events_are_split_and_search_joins_them(moto_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, [1], cid="req-big", pad=300_000)
    write_lines(path, [2], cid="req-big")
    logs = logs_client(moto_url)
    sink = CloudWatchSink(logs, backoff=FAST)
    ship_files([path], [sink])
    stored = all_messages(logs)
    assert len(stored) == 3 and all(len(m.encode()) + 26 <= 262_144 for m in stored)
    parts = [orjson.loads(m) for m in stored if "corrtrace" in orjson.loads(m)]
    assert {p["correlation_id"] for p in parts} == {"req-big"} and len(parts) == 2
    found = search_events("req-big", backend=sink)
    assert [e["labels"]["seq"] for e in found] == [1, 2]
    assert found[0]["message"] == "line 1" + "x" * 300_000


def test_events_outside_the_window_are_dead_lettered_with_a_reason(moto_url: str, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    path = tmp_path / "a.log"
    write_lines(path, [1], ts=now - 20 * 86_400_000)
    write_lines(path, [2], ts=now + 3 * 3_600_000)
    write_lines(path, [3], ts=now)
    dead = DeadLetters(tmp_path / "dead.jsonl")
    logs = logs_client(moto_url)
    ship_files([path], [CloudWatchSink(logs, dead_letters=dead, backoff=FAST)])
    assert _seqs(all_messages(logs)) == Counter([3])
    reasons = [orjson.loads(x)["reason"] for x in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert len(reasons) == 2 and "14 days" in reasons[0] and "future" in reasons[1]


def test_rejected_log_events_info_goes_to_the_dead_letter_file(moto_url: str, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    path = tmp_path / "a.log"
    write_lines(path, [1], ts=now - 1000)
    write_lines(path, [2], ts=now + 3 * 3_600_000)  # our pre-filter is widened below: CloudWatch rejects it
    dead = DeadLetters(tmp_path / "dead.jsonl")
    logs = logs_client(moto_url)
    sink = CloudWatchSink(logs, dead_letters=dead, backoff=FAST, limits=CwLimits(future_ms=30 * 86_400_000))
    ship_files([path], [sink])
    letters = [orjson.loads(x) for x in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert [x["reason"] for x in letters] == ["rejected by CloudWatch: too new"]
    assert _seqs(all_messages(logs)) == Counter([1])
    assert sink.stats.delivered == 1 and sink.stats.dead_lettered == 1


def test_throttling_and_unavailable_are_retried_and_all_delivered_once(moto_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    write_lines(path, range(20_000), pad=100)
    with FaultProxy(moto_url, throttle_puts()) as proxy:
        sink = CloudWatchSink(logs_client(proxy.url), backoff=FAST)
        ship_files([path], [sink])
    assert proxy.state["ThrottlingException"] >= 4 and proxy.state["ServiceUnavailableException"] >= 2
    assert _seqs(all_messages(logs_client(moto_url))) == Counter(range(20_000))  # all, and none twice
    assert sink.stats.retried > 0


def test_search_checks_the_pattern_client_side(moto_url: str, tmp_path: Path, aws: Any) -> None:
    path = tmp_path / "a.log"
    with open(path, "wb") as fh:
        for i in range(200):
            fh.write(line(i, cid=f"req-{i % 4}", service=["gateway", "orders"][i % 2]))
    sink = CloudWatchSink(logs_client(moto_url), backoff=FAST)
    ship_files([path], [sink])
    found = search_events("req-2", backend=sink)
    assert [e["labels"]["seq"] for e in found] == list(range(2, 200, 4))  # moto returned all 200
    assert search_events("req-2", backend=aws("logs"), since=BASE_MS + 100) == found[25:]
