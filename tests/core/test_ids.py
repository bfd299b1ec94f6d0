"""Untrusted correlation IDs: the valid are kept, the hostile replaced, and never logged raw."""

from __future__ import annotations

import io
import logging
import re

import orjson
import pytest

from corrtrace import ids
from corrtrace.logging import configure

HOSTILE = {
    "crlf": "abc\r\nX-Injected: 1",
    "lf-log-forging": 'ok\n{"level":"ERROR","message":"forged"}',
    "long": "a" * 10_000,
    "non-ascii": "ünïcødé-ID",
    "json-fragment": '{"correlation_id": "x"}',
    "empty": "",
    "whitespace": "   ",
    "tab": "a\tb",
    "nul": "a\x00b",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_ids_are_replaced(name: str) -> None:
    raw = HOSTILE[name]
    result = ids.accept(raw)
    assert result.value != raw
    assert ids.is_valid(result.value)
    assert result.status == ("generated" if raw == "" else "rejected")
    if result.excerpt is not None:
        assert len(result.excerpt) <= 40
        assert all(32 <= ord(c) < 127 or c == "…" for c in result.excerpt)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_rejected_id_never_reaches_a_log_line_raw(name: str) -> None:
    raw = HOSTILE[name]
    buffer = io.StringIO()
    handler = configure("svc", stream=buffer, logger="ids-test")
    try:
        result = ids.accept(raw)
        logging.getLogger("ids-test").warning(
            "rejected correlation id", extra={"labels": {"rejected_id": result.excerpt}}
        )
    finally:
        logging.getLogger("ids-test").removeHandler(handler)
    text = buffer.getvalue()
    assert text.count("\n") == 1 and "\r" not in text  # one line, no raw CR/LF
    if len(raw) > 40:
        assert raw not in text
    line = orjson.loads(text)
    assert line["message"] == "rejected correlation id"


def test_valid_ids_are_kept_and_bytes_accepted() -> None:
    for raw in ["abc", "A-b_c.d:e", "0" * 128, "01a21bac-fa4d-73ae-92b4-8d1f8ec5e658"]:
        assert ids.accept(raw) == ids.Accepted(raw, "accepted")
    assert ids.accept(b"abc-123").value == "abc-123"
    assert ids.accept(b"\xff\xfe").status == "rejected"
    assert ids.accept("0" * 129).status == "rejected"
    assert ids.accept(None).status == "generated"


def test_policy_is_configurable() -> None:
    policy = ids.IdPolicy(max_length=8, allowed_pattern=r"[0-9]+", generator=lambda: "12345678")
    assert ids.accept("1234", policy).status == "accepted"
    assert ids.accept("abcd", policy) == ids.Accepted("12345678", "rejected", "abcd")
    with pytest.raises(ValueError):
        ids.IdPolicy(max_length=0)


def test_uuid7_is_time_sortable_and_well_formed() -> None:
    generated = [ids.new_uuid7() for _ in range(2000)]
    assert len(set(generated)) == 2000
    pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(pattern.fullmatch(g) for g in generated)
    prefixes = [g[:13] for g in generated]  # the 48-bit millisecond timestamp
    assert prefixes == sorted(prefixes)


def test_uuid7_time_prefix_follows_the_clock_across_milliseconds_and_when_set_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1_700_000_000_000_500_000]  # ns: half-way through a millisecond
    monkeypatch.setattr(ids, "_tns", lambda: clock[0])
    seen = []
    for step in (0, 400_000, 200_000, -10_000_000_000, 1):  # same ms, next ms, set back 10 s, same ms again
        clock[0] += step
        seen.append(int(ids.new_uuid7().replace("-", "")[:12], 16))
    start = 1_700_000_000_000
    assert seen == [start, start, start + 1, start - 10_000 + 1, start - 10_000 + 1]
