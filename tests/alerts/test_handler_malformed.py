"""The alert-handler and subscription Lambdas take any event: every field of every sample event (and of the
decoded subscription payload) replaced by odd values gives a result, never an exception; a malformed event is
skipped with its reason (a retry cannot fix it) and the well-formed log events around a bad one still count."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from corrtrace.alerts import builtin_alerts
from corrtrace.alerts.handler import AlertHandler
from corrtrace.collector import ElasticsearchSink
from corrtrace.collector.sources import cloudwatch_subscription
from corrtrace.txmanager import TxManagerClient

from corrtrace.awslogs import decode_awslogs
from tests.fixtures import AWS_EVENTS
from tests.shapes import ODD, variants


def _encode(payload: Any) -> str:
    return base64.b64encode(gzip.compress(orjson.dumps(payload))).decode()


def _variants(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from variants(event)
    if "awslogs" in event:
        for payload in variants(decode_awslogs(event["awslogs"]["data"])):
            yield {"awslogs": {"data": _encode(payload)}}


@pytest.mark.parametrize("fixture", sorted(p.name for p in AWS_EVENTS.glob("*.json")))
def test_any_field_of_any_shape_gives_a_result(fixture: str, receiver: Any, caplog: pytest.LogCaptureFixture) -> None:
    event = json.loads((AWS_EVENTS / fixture).read_text())
    caplog.set_level(logging.WARNING)
    with TxManagerClient(receiver.url, receiver.secret, retries=0) as client:
        handler = AlertHandler(client, builtin_alerts())
        results = [handler(variant) for variant in _variants(event)]
    assert len(results) > len(ODD) and all(isinstance(r, dict) and "kind" in r for r in results)
    assert "Traceback" not in caplog.text


def test_a_bad_log_event_is_skipped_and_the_others_count(receiver: Any, caplog: pytest.LogCaptureFixture) -> None:
    payload = decode_awslogs(json.loads((AWS_EVENTS / "cloudWatchLogEvent.json").read_text())["awslogs"]["data"])
    payload["subscriptionFilters"] = ["corrtrace-errors-and-exceptions-handler"]
    good = payload["logEvents"][0]
    good["message"] = "[ERROR] boom correlation_id=req-7"
    payload["logEvents"] = [{**good, "timestamp": "soon"}, None, good, {**good, "message": 5}]
    with TxManagerClient(receiver.url, receiver.secret, retries=0) as client:
        result = AlertHandler(client, builtin_alerts())({"awslogs": {"data": _encode(payload)}})
        bad = AlertHandler(client, builtin_alerts())({"awslogs": {"data": "not base64!"}})
    assert result["events"] == 1 and result["correlation_ids"] == ["req-7"] and receiver.ids() == ["req-7"]
    assert "skipped 3 log event(s) of the wrong shape" in caplog.text
    assert bad["kind"] == "subscription" and "not base64" in bad["skipped"]


def test_the_subscription_lambda_skips_what_it_cannot_read(es: Any, index_prefix: str) -> None:
    sink = ElasticsearchSink(es, prefix=index_prefix)
    for event in ({"awslogs": None}, {"awslogs": {"data": "x"}}, {"awslogs": {"data": _encode([1])}}, {}):
        assert cloudwatch_subscription.handler(event, None, sink=sink) == {
            "received": 0,
            "acknowledged": 0,
            "malformed": 1,
        }
    payload = decode_awslogs(json.loads((AWS_EVENTS / "cloudWatchLogEvent.json").read_text())["awslogs"]["data"])
    first, second = payload["logEvents"]
    payload["logEvents"] = [first, {**second, "id": None}, {"id": "x"}]
    result = cloudwatch_subscription.handler({"awslogs": {"data": _encode(payload)}}, None, sink=sink)
    assert result == {"received": 1, "acknowledged": 1}
