"""One capped decoder for CloudWatch Logs subscription payloads, used by the collector and the alert handler."""

from __future__ import annotations

import base64
import gzip

import orjson
import pytest
from corrtrace.alerts.handler import decode_awslogs as handler_decode
from corrtrace.collector.sources.cloudwatch_subscription import decode as collector_decode

from corrtrace.awslogs import MAX_DECOMPRESSED_BYTES, decode_awslogs


def _payload(doc: object) -> str:
    return base64.b64encode(gzip.compress(orjson.dumps(doc))).decode()


def test_a_payload_decodes_to_its_message() -> None:
    doc = {"messageType": "DATA_MESSAGE", "logGroup": "/g", "logEvents": [{"id": "1", "timestamp": 1, "message": "m"}]}
    assert decode_awslogs(_payload(doc)) == doc
    assert collector_decode({"awslogs": {"data": _payload(doc)}}) == doc
    assert handler_decode is decode_awslogs  # the alert handler uses the same function


def test_a_gzip_bomb_is_refused_by_the_collector_and_the_handler() -> None:
    """A small payload that inflates past the cap (here valid JSON, so only the cap can refuse it)."""
    bomb = _payload({"messageType": "DATA_MESSAGE", "logEvents": [], "pad": "a" * (MAX_DECOMPRESSED_BYTES + 10)})
    assert len(bomb) < 200_000
    with pytest.raises(ValueError, match="decompressed subscription payload too large"):
        collector_decode({"awslogs": {"data": bomb}})
    with pytest.raises(ValueError, match="decompressed subscription payload too large"):
        handler_decode(bomb)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"plain bytes").decode(), "not gzip"),
        (base64.b64encode(gzip.compress(b"{broken")).decode(), "not JSON"),
        (_payload([1, 2]), "not a JSON object"),
    ],
)
def test_damaged_payloads_are_one_line_errors(data: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        decode_awslogs(data)
    assert "\n" not in str(info.value)
