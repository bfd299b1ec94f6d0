"""One timestamp rule (corrtrace/timestamps.py): the alert engine bins an event at the time the collector stores
it, and the alert handler reads CloudWatch's alarm times with the same function."""

from __future__ import annotations

import pytest
from corrtrace.alerts.engine import event_time
from corrtrace.collector.record import TIMESTAMP_FAILURE_TAG, make_record

from corrtrace.timestamps import format_timestamp, parse_timestamp_ms, parse_timestamp_s

STAMPS = [
    "2027-01-15T08:00:01.123Z",
    "2027-01-15T08:00:01Z",
    "2027-01-15T08:00:01.123456+02:00",
    "2027-01-15T08:00:01.1234567Z",
    "2027-01-15",
    "2027-01-15T08:00",
    "yesterday",
    "",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
]


@pytest.mark.parametrize("stamp", STAMPS)
def test_alerts_read_an_event_time_as_the_collector_stores_it(stamp: str) -> None:
    record, event = make_record("s", 0, 1, b'{"@timestamp": "%s", "message": "m"}' % stamp.encode(), now_ms=5)
    stored = None if TIMESTAMP_FAILURE_TAG in event.get("tags", []) else record.ts / 1000
    assert event_time({"@timestamp": stamp}) == stored


def test_cloudwatch_alarm_times_and_the_round_trip() -> None:
    assert parse_timestamp_s("2024-01-01T00:00:00.000+0000") == 1_704_067_200.0  # an alarm's stateChange time
    assert parse_timestamp_s(1_704_067_200_000) is None  # text only: a number is not an alarm time
    assert parse_timestamp_ms(format_timestamp(1_704_067_200_123)) == 1_704_067_200_123


def test_fractions_in_other_unicode_digits_are_unreadable_not_an_error() -> None:
    """``"1²3".isdigit()`` is true but ``int()`` refuses it: such a time is unreadable (None), never a ValueError
    out of make_record for one hostile line."""
    for value in ("2026-11-30T12:00:05.1²3Z", "2026-11-30T12:00:05.12³Z", "2026-11-30T12:00:05.1²Z"):
        assert parse_timestamp_ms(value) is None
    assert parse_timestamp_ms("2026-11-30T12:00:05.1234Z") == parse_timestamp_ms("2026-11-30T12:00:05.123Z")
