"""The PutLogEvents batcher against the real limits (moto enforces none of them)."""

from __future__ import annotations

import orjson
from corrtrace.collector.sinks.cw_batcher import (
    DAY_MS,
    CwEvent,
    CwLimits,
    batch_fill,
    event_size,
    plan_batches,
    split_message,
    window_reason,
)
from hypothesis import given, settings
from hypothesis import strategies as st

LIMITS = CwLimits()
NOW = 1_800_000_000_000

messages = st.one_of(
    st.text(min_size=1, max_size=300),
    st.text(alphabet='é€𝄞"\\\n\x01a', min_size=1, max_size=2000),
    st.integers(min_value=1, max_value=400_000).map(lambda n: "a" * n),
    st.integers(min_value=1, max_value=120_000).map(lambda n: "€" * n),  # 3 bytes per character
)
timestamps = st.integers(min_value=NOW - 14 * DAY_MS, max_value=NOW)


def _events(draws: list[tuple[int, str]], limits: CwLimits) -> list[CwEvent]:
    out = []
    for i, (ts, msg) in enumerate(draws):
        for part in split_message(msg, correlation_id=f"c{i}", event_id=f"e{i}", timestamp_text="t", limits=limits):
            out.append(CwEvent(ts, part, event_size(part), i))
    return out


def _check(batches: list[list[CwEvent]], limits: CwLimits) -> None:
    for batch in batches:
        assert 1 <= len(batch) <= limits.max_events
        assert sum(len(e.message.encode()) + 26 for e in batch) <= limits.max_batch_bytes
        assert batch[-1].timestamp - batch[0].timestamp <= limits.max_span_ms
        assert [e.timestamp for e in batch] == sorted(e.timestamp for e in batch)
        for e in batch:
            assert e.message
            assert len(e.message.encode()) + 26 <= limits.max_event_bytes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(timestamps, messages), min_size=1, max_size=40))
def test_batches_never_exceed_a_limit_and_lose_nothing(draws: list[tuple[int, str]]) -> None:
    events = _events(draws, LIMITS)
    batches = list(plan_batches(events, LIMITS))
    _check(batches, LIMITS)
    assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in events)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3 * DAY_MS), st.integers(1, 600)), min_size=1, max_size=30_000),
    st.sampled_from([(10_000, 1_048_576), (50, 1_048_576), (10_000, 4_000)]),
)
def test_many_small_events_respect_count_bytes_and_span(
    draws: list[tuple[int, int]], limits_pair: tuple[int, int]
) -> None:
    limits = CwLimits(max_events=limits_pair[0], max_batch_bytes=limits_pair[1], max_event_bytes=2_000)
    events = [CwEvent(NOW - ts, "m" * size, size + 26) for ts, size in draws]
    batches = list(plan_batches(events, limits))
    _check(batches, limits)
    assert sum(len(b) for b in batches) == len(events)


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=3000), st.integers(min_value=300, max_value=2000))
def test_split_parts_fit_and_reassemble(text: str, max_event_bytes: int) -> None:
    limits = CwLimits(max_event_bytes=max_event_bytes)
    parts = split_message(text, correlation_id="cid-1", event_id="src-1", timestamp_text="t", limits=limits)
    for part in parts:
        assert len(part.encode()) + 26 <= max_event_bytes
    if len(parts) == 1 and event_size(text) <= max_event_bytes:
        assert parts == [text]
    else:
        docs = [orjson.loads(p) for p in parts]
        assert all(d["correlation_id"] == "cid-1" for d in docs)
        assert [d["corrtrace"]["part"] for d in docs] == list(range(1, len(docs) + 1))
        assert {d["corrtrace"]["parts"] for d in docs} == {len(docs)}
        assert "".join(d["message"] for d in docs) == text


def test_default_per_event_limit_is_256_kib_and_splits_a_300_kb_line() -> None:
    big = "x" * 300_000
    parts = split_message(big, correlation_id="c", event_id="e", timestamp_text="t")
    assert len(parts) == 2
    assert all(event_size(p) <= 262_144 for p in parts)


def test_backlog_fills_batches_to_the_binding_limit() -> None:
    events = [CwEvent(NOW + i, "y" * 350, 376) for i in range(30_000)]
    batches = list(plan_batches(events))
    fills = [batch_fill(b) for b in batches]
    assert all(f > 0.99 for f in fills[:-1])  # bytes bind: 2,788 events of 376 B per call


def test_window_reasons() -> None:
    assert window_reason(NOW, NOW) is None
    assert "future" in str(window_reason(NOW + 3 * 3_600_000, NOW))
    assert "14 days" in str(window_reason(NOW - 15 * DAY_MS, NOW))
    assert window_reason(-1, NOW) is not None
