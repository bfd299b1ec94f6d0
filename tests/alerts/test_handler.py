"""The alert-handler Lambda on the real AWS payloads in tests/fixtures/aws-events (copies get correlation IDs where
a test needs them), calling a real signed HTTP receiver through corrtrace.txmanager.TxManagerClient."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from corrtrace.alerts import builtin_alerts, parse_alerts
from corrtrace.alerts.handler import AlertHandler, decode_awslogs, logs_lookup
from corrtrace.txmanager import TxManagerClient

from tests.fixtures import AWS_EVENTS

EVENTS = AWS_EVENTS


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def encode(payload: dict[str, Any]) -> str:
    return base64.b64encode(gzip.compress(orjson.dumps(payload))).decode()


@pytest.fixture()
def client(receiver: Any) -> Any:
    with TxManagerClient(receiver.url, receiver.secret, retries=0) as c:
        yield c


def test_real_subscription_payload_is_decoded(client: Any, receiver: Any) -> None:
    event = load("cloudWatchLogEvent.json")
    payload = decode_awslogs(event["awslogs"]["data"])
    assert [e["message"] for e in payload["logEvents"]] == ["[ERROR] First test message", "[ERROR] Second test message"]
    result = AlertHandler(client, builtin_alerts())(event)
    assert result["events"] == 2 and result["correlation_ids"] == []  # the sample carries no correlation ID
    assert receiver.calls == []


def test_subscription_copy_with_correlation_ids_rolls_each_back_once(client: Any, receiver: Any) -> None:
    payload = decode_awslogs(load("cloudWatchLogEvent.json")["awslogs"]["data"])
    payload["subscriptionFilters"] = ["corrtrace-errors-and-exceptions-handler"]
    first, second = payload["logEvents"]
    first["message"] = "[ERROR] First test message correlation_id=req-1"
    second["message"] = orjson.dumps({"message": "boom", "log": {"level": "ERROR"}, "correlation_id": "req-2"}).decode()
    extra = copy.deepcopy(second)
    extra["message"] = orjson.dumps({"message": "all fine", "correlation_id": "req-3"}).decode()  # no Error
    dup = copy.deepcopy(first)
    payload["logEvents"] += [extra, dup]
    result = AlertHandler(client, builtin_alerts())({"awslogs": {"data": encode(payload)}})
    assert result["correlation_ids"] == ["req-1", "req-2"]
    assert sorted(receiver.ids()) == ["req-1", "req-2"]
    assert {p["source"] for _, p in receiver.calls} == {"corrtrace-errors-and-exceptions-handler"}


def test_a_json_error_logged_outside_any_request_names_no_id(client: Any, receiver: Any) -> None:
    """``"correlation_id": null`` is no ID: the text fallback reads the message, never the raw JSON (once "null")."""
    payload = decode_awslogs(load("cloudWatchLogEvent.json")["awslogs"]["data"])
    payload["subscriptionFilters"] = ["corrtrace-errors-and-exceptions-handler"]
    first, second = payload["logEvents"]
    first["message"] = orjson.dumps({"message": "boom", "log": {"level": "ERROR"}, "correlation_id": None}).decode()
    second["message"] = orjson.dumps({"message": "Error in correlation_id=req-9", "correlation_id": None}).decode()
    result = AlertHandler(client, builtin_alerts())({"awslogs": {"data": encode(payload)}})
    assert result["events"] == 2 and result["correlation_ids"] == ["req-9"]
    assert receiver.ids() == ["req-9"]


def test_real_kinesis_cloudwatch_logs_payload(client: Any, receiver: Any) -> None:
    result = AlertHandler(client, builtin_alerts())(load("kinesisStreamCloudWatchLogsEvent.json"))
    assert result["kind"] == "subscription" and result["events"] == 6
    assert result["correlation_ids"] == [] and receiver.calls == []


def test_subscription_jam_detection(client: Any, receiver: Any) -> None:
    payload = decode_awslogs(load("cloudWatchLogEvent.json")["awslogs"]["data"])
    payload["subscriptionFilters"] = ["stream-consumer-failures"]
    template = payload["logEvents"][0]
    payload["logEvents"] = []
    for i in range(3):
        item = copy.deepcopy(template)
        item["timestamp"] = 1_700_000_000_000 + i * 1000
        item["message"] = orjson.dumps(
            {"correlation_id": "poison-1", "faas": {"name": "orders"}, "event": {"outcome": "failure"}}
        ).decode()
        payload["logEvents"].append(item)
    result = AlertHandler(client, [a for a in builtin_alerts() if a.name == "stream-jam"])(
        {"awslogs": {"data": encode(payload)}}
    )
    assert result["jammed"] == ["poison-1"]
    assert receiver.ids() == ["poison-1"]  # once, although three events carried it


def test_composite_alarm_staying_in_alarm_is_not_a_transition(client: Any, receiver: Any) -> None:
    result = AlertHandler(client, builtin_alerts())(load("cloudWatchAlarmEventCompositeMetric.json"))
    assert result["skipped"] == "not a transition into ALARM" and receiver.calls == []


def test_unknown_alarm_is_skipped(client: Any, receiver: Any) -> None:
    result = AlertHandler(client, builtin_alerts())(load("cloudWatchAlarmEventSingleMetric.json"))
    assert "no alert definition" in result["skipped"] and receiver.calls == []


def test_alarm_event_reads_log_group_and_filters_locally(aws: Any, client: Any, receiver: Any) -> None:
    logs = aws("logs")
    logs.create_log_group(logGroupName="/corrtrace/orders")
    logs.create_log_stream(logGroupName="/corrtrace/orders", logStreamName="s")
    now = time.time()
    messages = [
        {"correlation_id": "bad-1", "event": {"outcome": "failure"}},
        {"correlation_id": "good-1", "event": {"outcome": "success"}},
        {"correlation_id": "bad-2", "event": {"outcome": "failure"}},
        {"correlation_id": "bad-1", "event": {"outcome": "failure"}},
    ]
    logs.put_log_events(
        logGroupName="/corrtrace/orders",
        logStreamName="s",
        logEvents=[
            {"timestamp": int((now - 50 + i) * 1000), "message": orjson.dumps(m).decode()}
            for i, m in enumerate(messages)
        ],
    )
    alerts = parse_alerts(
        [
            {
                "name": "orders-failures",
                "log_groups": ["/corrtrace/orders"],
                "pattern": '{ $.event.outcome = "failure" }',
                "metric": {"namespace": "t", "name": "F"},
                "alarm": {"name": "Test alert", "threshold": 1},
            }
        ]
    )
    event = load("cloudWatchAlarmEventSingleMetric.json")
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    event["alarmData"]["state"]["timestamp"] = stamp
    reason = json.loads(event["alarmData"]["state"]["reasonData"])
    reason["startDate"] = datetime.fromtimestamp(now - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    event["alarmData"]["state"]["reasonData"] = json.dumps(reason)
    result = AlertHandler(client, alerts, lookup=logs_lookup(logs))(event)
    assert result["kind"] == "alarm"
    assert result["correlation_ids"] == ["bad-1", "bad-2"]  # moto returned all four; the engine filtered
    assert sorted(receiver.ids()) == ["bad-1", "bad-2"]
    assert {p["source"] for _, p in receiver.calls} == {"Test alert"}
