"""Pure PutLogEvents batching to the real limits (moto enforces none of them).

A batch holds 1..10,000 events, at most 1,048,576 bytes counted as UTF-8 message bytes + 26 per event, spans
at most 24 hours, and is sorted by timestamp. Events over the per-event limit are split into numbered parts
that share the correlation id; events outside [now - 14 days + margin, now + 2 hours - margin] are refused with
a reason (the caller dead-letters them) instead of being rejected by AWS in silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

EVENT_OVERHEAD = 26
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class CwLimits:
    """The PutLogEvents limits (collector/README.md, "CloudWatch limits"); ``max_event_bytes`` counts message + 26."""

    max_events: int = 10_000
    max_batch_bytes: int = 1_048_576
    max_span_ms: int = DAY_MS
    max_event_bytes: int = 262_144
    future_ms: int = 2 * HOUR_MS
    past_ms: int = 14 * DAY_MS
    margin_ms: int = 5 * 60_000


@dataclass
class CwEvent:
    """One PutLogEvents entry plus what the sink needs to account for it."""

    timestamp: int
    message: str
    size: int  # UTF-8 bytes of message + 26
    key: Any = None  # the originating record (for dead letters and the landed journal)

    def to_api(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "message": self.message}


def event_size(message: str) -> int:
    return len(message.encode("utf-8")) + EVENT_OVERHEAD


def window_reason(timestamp: int, now_ms: int, limits: CwLimits = CwLimits()) -> str | None:
    """Why CloudWatch would reject an event at ``timestamp``, or None when it is acceptable."""
    if timestamp < 0:
        return "timestamp before 1970"
    if timestamp > now_ms + limits.future_ms - limits.margin_ms:
        return "more than 2 hours in the future (CloudWatch rejects it: tooNewLogEventStartIndex)"
    if timestamp < now_ms - limits.past_ms + limits.margin_ms:
        return "older than 14 days (CloudWatch rejects it: tooOldLogEventEndIndex)"
    return None


def split_message(
    message: str,
    *,
    correlation_id: str | None,
    event_id: str,
    timestamp_text: str | None,
    limits: CwLimits = CwLimits(),
) -> list[str]:
    """``message`` itself when it fits; else JSON parts ``{"correlation_id", "@timestamp", "message",
    "corrtrace": {"part": i, "parts": n, "id": event_id}}`` whose ``message`` values concatenate to the original."""
    if not message:
        message = " "  # CloudWatch refuses empty messages
    if event_size(message) <= limits.max_event_bytes:
        return [message]
    budget = limits.max_event_bytes - EVENT_OVERHEAD

    def envelope(chunk: str, part: int, parts: int) -> str:
        return orjson.dumps(
            {
                "correlation_id": correlation_id,
                "@timestamp": timestamp_text,
                "message": chunk,
                "corrtrace": {"part": part, "parts": parts, "id": event_id},
            }
        ).decode()

    empty = len(envelope("", 99_999, 99_999).encode())
    if empty >= budget:
        raise ValueError("max_event_bytes is too small to hold a split part")
    chunks: list[str] = []
    pos = 0
    while pos < len(message):
        take = min(len(message) - pos, budget - empty)
        while True:
            chunk = message[pos : pos + take]
            size = len(envelope(chunk, 99_999, 99_999).encode())
            if size <= budget:
                break
            take = max(1, min(take - 1, int(take * (budget - empty) / (size - empty))))
        chunks.append(chunk)
        pos += take
    return [envelope(chunk, i + 1, len(chunks)) for i, chunk in enumerate(chunks)]


def plan_batches(events: Iterable[CwEvent], limits: CwLimits = CwLimits()) -> Iterator[list[CwEvent]]:
    """Sort by timestamp (stable) and cut into batches that respect every PutLogEvents limit."""
    ordered = sorted(events, key=lambda e: e.timestamp)
    batch: list[CwEvent] = []
    size = 0
    for event in ordered:
        if event.size > limits.max_event_bytes:
            raise ValueError("split events over max_event_bytes before batching")
        if batch and (
            len(batch) >= limits.max_events
            or size + event.size > limits.max_batch_bytes
            or event.timestamp - batch[0].timestamp > limits.max_span_ms
        ):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event.size
    if batch:
        yield batch


def batch_fill(batch: list[CwEvent], limits: CwLimits = CwLimits()) -> float:
    """How full a batch is against whichever of the count and byte limits binds (1.0 = full)."""
    return max(len(batch) / limits.max_events, sum(e.size for e in batch) / limits.max_batch_bytes)
