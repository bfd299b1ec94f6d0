"""Local evaluation: metric filters -> datapoints -> CloudWatch alarm semantics -> actions with the
correlation IDs of the matching events, delivered as signed calls to a real HTTP receiver."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from corrtrace.alerts import (
    AlarmNotification,
    AlertEngine,
    CallbackAction,
    TxManagerAction,
    builtin_alerts,
    parse_alerts,
)
from corrtrace.alerts.evaluator import ALARM, OK
from corrtrace.alerts.jam import JamDetector

T0 = 1_800_000_000.0  # a period boundary (divisible by 60)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def line(**fields: Any) -> tuple[dict[str, Any], str]:
    event: dict[str, Any] = {"message": "x", "service": {"name": "checkout"}}
    for dotted, value in fields.items():
        target = event
        *head, last = dotted.split("__")
        for part in head:
            target = target.setdefault(part, {})
        target[last] = value
    return event, orjson.dumps(event).decode()


def by_name(name: str) -> list[Any]:
    return [a for a in builtin_alerts() if a.name == name]


def test_business_failure_alarm_rolls_back_each_matching_correlation_id(receiver: Any) -> None:
    clock = Clock()
    action = TxManagerAction.from_url(receiver.url, receiver.secret)
    engine = AlertEngine(by_name("business-failures"), {"txmanager": action}, clock=clock)
    for i, outcome in enumerate(["failure", "success", "failure", "failure", "success"]):
        event, raw = line(correlation_id=f"req-{i}", event__outcome=outcome)
        engine.feed(event, raw, timestamp=T0 + 5 + i)
    # the minute is not complete yet: no datapoint, missing data is notBreaching -> OK, nothing sent
    assert [t.new_state for t in engine.tick(T0 + 30)] == [OK]
    assert receiver.calls == []
    transitions = engine.tick(T0 + 61)
    assert [(t.old_state, t.new_state) for t in transitions] == [(OK, ALARM)]
    assert sorted(receiver.ids()) == ["req-0", "req-2", "req-3"]
    assert all(payload["source"] == "business-failures" for _, payload in receiver.calls)
    assert receiver.rejected == 0
    # still in ALARM: a new failing request is rolled back once, an already handled one is not repeated
    for cid in ("req-9", "req-0"):
        event, raw = line(correlation_id=cid, event__outcome="failure")
        engine.feed(event, raw, timestamp=T0 + 70)
    assert engine.tick(T0 + 121) == []
    assert sorted(receiver.ids()) == ["req-0", "req-2", "req-3", "req-9"]
    # quiet minute: notBreaching default 0 -> back to OK, no rollbacks
    event, raw = line(correlation_id="ok-1", event__outcome="success")
    engine.feed(event, raw, timestamp=T0 + 130)
    assert [t.new_state for t in engine.tick(T0 + 181)] == [OK]
    assert len(receiver.calls) == 4


def test_receiver_rejects_unsigned_and_tampered_calls(receiver: Any) -> None:
    assert httpx.post(receiver.url + "/transactions/abc/rollback", json={}).status_code == 401
    from corrtrace.signing import sign_request

    headers = sign_request(receiver.secret, "POST", "/transactions/abc/rollback", b'{"reason":"a"}')
    tampered = httpx.post(receiver.url + "/transactions/abc/rollback", content=b'{"reason":"b"}', headers=headers)
    assert tampered.status_code == 401
    assert receiver.calls == [] and receiver.rejected == 2


def test_default_value_and_m_of_n_for_terms_alert() -> None:
    (alert,) = parse_alerts(
        {
            "alerts": [
                {
                    "name": "errors",
                    "pattern": "?Error ?Exception",
                    "metric": {"namespace": "t", "name": "Errors", "default": 0},
                    "alarm": {
                        "statistic": "Sum",
                        "period": 60,
                        "evaluation_periods": 3,
                        "datapoints_to_alarm": 2,
                        "threshold": 2,
                        "treat_missing_data": "missing",
                    },
                }
            ]
        }
    )
    seen: list[AlarmNotification] = []
    engine = AlertEngine([alert], [CallbackAction(seen.append)], clock=Clock())
    plan = {0: ["a Error", "b Exception", "fine"], 1: ["fine", "fine"], 2: ["c Error", "ValueError d", "e"]}
    for minute, messages in plan.items():
        for k, message in enumerate(messages):
            engine.feed(None, f"{message} correlation_id=m{minute}-{k}", timestamp=T0 + 60 * minute + k)
    evaluator = engine._states[0].evaluator
    assert evaluator is not None
    assert [evaluator.datapoint(T0 + 60 * m) for m in range(3)] == [2.0, 0.0, 2.0]
    transitions = engine.tick(T0 + 180)
    assert [t.new_state for t in transitions] == [ALARM]
    assert seen and set(seen[0].correlation_ids) == {"m0-0", "m0-1", "m2-0", "m2-1"}


def test_metric_value_extraction_json_and_space_delimited() -> None:
    alerts = parse_alerts(
        [
            {
                "name": "latency",
                "pattern": "{ $.latency = * }",
                "metric": {"namespace": "t", "name": "Latency", "value": "$.latency"},
                "alarm": {"statistic": "Maximum", "threshold": 500, "comparison": "GreaterThanThreshold"},
            },
            {
                "name": "bytes",
                "pattern": "[ip, user, username, timestamp, request, status_code=4*, size]",
                "metric": {"namespace": "t", "name": "Bytes", "value": "$size"},
                "alarm": {"statistic": "Sum", "threshold": 3000},
            },
        ]
    )
    engine = AlertEngine(alerts, clock=Clock())
    for value in (50, 700, "fast"):
        engine.feed({"latency": value}, orjson.dumps({"latency": value}).decode(), timestamp=T0 + 1)
    apache = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" {} {}'
    for status, size in ((404, 1534), (403, 1600), (200, 9999)):
        engine.feed(None, apache.format(status, size), timestamp=T0 + 2)
    latency, size = (s.evaluator for s in engine._states)
    assert latency is not None and size is not None
    assert latency.datapoint(T0) == 700.0
    assert engine.stats("latency").dropped_values == 1  # "fast" is not a number: no datapoint
    assert size.datapoint(T0) == 3134.0
    assert {t.alarm_name: t.new_state for t in engine.tick(T0 + 60)} == {"latency": ALARM, "bytes": ALARM}


def test_log_group_filter_and_failing_action_does_not_stop_others() -> None:
    (alert,) = parse_alerts(
        [
            {
                "name": "g",
                "log_groups": ["/a"],
                "pattern": "ERROR",
                "metric": {"namespace": "t", "name": "E"},
                "alarm": {"threshold": 1},
            }
        ]
    )
    seen: list[str] = []

    def boom(_: AlarmNotification) -> None:
        raise RuntimeError("down")

    engine = AlertEngine([alert], [CallbackAction(boom), CallbackAction(lambda n: seen.append(n.state))], clock=Clock())
    assert engine.feed(None, "ERROR x", log_group="/b", timestamp=T0) == []
    assert engine.feed(None, "ERROR x", log_group="/a", timestamp=T0) == ["g"]
    engine.tick(T0 + 60)
    assert seen == [ALARM]


def test_stream_jam_fires_once_per_poison_record(receiver: Any) -> None:
    action = TxManagerAction.from_url(receiver.url, receiver.secret)
    seen: list[AlarmNotification] = []
    engine = AlertEngine(
        by_name("stream-jam"), {"txmanager": action, "sns": CallbackAction(seen.append)}, clock=Clock()
    )

    def fail(cid: str, at: float) -> None:
        event, raw = line(correlation_id=cid, faas__name="orders-consumer", event__outcome="failure")
        engine.feed(event, raw, timestamp=at)

    fail("poison", T0)
    fail("other", T0 + 1)
    fail("poison", T0 + 10)
    assert receiver.calls == []
    fail("poison", T0 + 20)  # third failure within 300 s: jam
    fail("poison", T0 + 30)  # same jam: not reported again
    fail("other", T0 + 400)  # 2nd failure of "other", but the first left the window long ago
    assert receiver.ids() == ["poison"]
    assert "stream jam" in receiver.calls[0][1]["reason"]
    assert engine.stats("stream-jam").jams == 1


def test_jam_detector_window_and_reset() -> None:
    jam = JamDetector(threshold=2, window=10)
    assert jam.record("a", 0) is None
    first = jam.record("a", 5)
    assert first is not None and first.failures == 2
    assert jam.record("a", 6) is None
    assert jam.record("a", 30) is None  # window passed: the jam cleared
    assert jam.record("a", 31) is not None  # a new jam is reported again
    with pytest.raises(ValueError):
        JamDetector(threshold=1)


def test_jam_detector_memory_does_not_grow_with_failures_of_one_id() -> None:
    """A poison record failing 200,000 times within the window is one jam, and costs the detector a few floats."""
    import tracemalloc

    jam = JamDetector(threshold=3, window=300)
    reported = []
    tracemalloc.start()
    try:
        for i in range(200_000):
            report = jam.record("poison", i / 1000)
            if report is not None:
                reported.append((i, report.failures))
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reported == [(2, 3)]
    assert grown < 64 << 10, f"the detector grew by {grown} bytes"


def test_datapoints_go_to_cloudwatch_and_state_is_mirrored(aws: Any) -> None:
    from datetime import UTC, datetime

    from corrtrace.alerts.deploy import Deployer

    cw = aws("cloudwatch")
    alerts = by_name("business-failures")
    Deployer(aws("logs"), cw).deploy([a for a in parse_alerts([{**_raw_business(), "subscribe": False}])])
    now = float(int(datetime.now(UTC).timestamp()) // 60 * 60 - 300)
    engine = AlertEngine(alerts, clock=Clock(now), cloudwatch=cw)
    for i, outcome in enumerate(["failure", "failure", "success"]):
        event, raw = line(correlation_id=f"c{i}", event__outcome=outcome)
        engine.feed(event, raw, timestamp=now + 1 + i)
    assert [t.new_state for t in engine.tick(now + 60)] == [ALARM]
    stats = cw.get_metric_statistics(
        Namespace="corrtrace",
        MetricName="BusinessFailures",
        StartTime=datetime.fromtimestamp(now - 60, UTC),
        EndTime=datetime.fromtimestamp(now + 120, UTC),
        Period=60,
        Statistics=["Sum", "SampleCount"],
    )["Datapoints"]
    assert [(p["Sum"], p["SampleCount"]) for p in stats] == [(2.0, 3.0)]  # 1 + 1 + default 0
    assert cw.describe_alarms(AlarmNames=["business-failures"])["MetricAlarms"][0]["StateValue"] == ALARM


def _raw_business() -> dict[str, Any]:
    from importlib import resources

    import yaml

    doc = yaml.safe_load(resources.files("corrtrace.alerts").joinpath("builtin.yaml").read_text())
    return next(a for a in doc["alerts"] if a["name"] == "business-failures")


def test_engine_fed_by_the_collector_pipeline(tmp_path: Any) -> None:
    from corrtrace.collector import EmbeddedStore, ship_files

    clock = Clock(T0 + 30)
    seen: list[AlarmNotification] = []
    engine = AlertEngine(
        [a for a in builtin_alerts() if a.name in ("business-failures", "errors-and-exceptions")],
        {"txmanager": CallbackAction(seen.append)},
        clock=clock,
    )
    log = tmp_path / "svc.log"
    lines = [
        orjson.dumps({"@timestamp": "2027-01-15T08:00:01Z", "correlation_id": "p-1", "event": {"outcome": "failure"}}),
        orjson.dumps({"@timestamp": "2027-01-15T08:00:02Z", "correlation_id": "p-2", "event": {"outcome": "success"}}),
        b"plain text line with an Exception correlation_id=p-3",
    ]
    log.write_bytes(b"\n".join(lines) + b"\n")
    store = EmbeddedStore(str(tmp_path / "store.db"))
    try:
        ship_files([log], [store], data_dir=tmp_path / "data", subscribers=[engine.feed_event])
    finally:
        store.close()
    assert engine.stats("business-failures").matched == 1
    assert engine.stats("errors-and-exceptions").matched == 1
    from corrtrace.alerts.engine import event_time

    stamp = event_time({"@timestamp": "2027-01-15T08:00:01Z"})
    assert stamp is not None
    transitions = engine.tick(stamp + 60)
    assert {t.alarm_name for t in transitions if t.new_state == ALARM} == {"business-failures"}
    fired = [n for n in seen if n.state == ALARM]
    assert [(n.alarm_name, n.correlation_ids) for n in fired] == [("business-failures", ("p-1",))]


def test_sns_and_lambda_actions_on_moto(aws: Any) -> None:
    from corrtrace.alerts import LambdaAction, SnsAction

    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name="ops")["TopicArn"]
    queue = sqs.create_queue(QueueName="ops-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    (alert,) = parse_alerts(
        [
            {
                "name": "sns-alert",
                "pattern": "ERROR",
                "metric": {"namespace": "t", "name": "E"},
                "alarm": {"threshold": 1, "treat_missing_data": "notBreaching"},
                "actions": [{"type": "sns", "topic_arn": topic}],
            }
        ]
    )
    engine = AlertEngine([alert], {"sns": SnsAction(sns)}, clock=Clock())
    engine.feed(None, "ERROR correlation_id=s-1", timestamp=T0 + 1)
    engine.tick(T0 + 60)
    engine.tick(T0 + 600)  # back to OK: no OK notification (AlarmActions only)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    body = orjson.loads(messages[0]["Body"])
    assert body["state"] == ALARM and body["correlation_ids"] == ["s-1"] and body["alarm_name"] == "sns-alert"
    # Lambda action: a real asynchronous invoke on moto (moto does not run handlers; the payload is checked here
    # and the alert-handler's reading of it in test_handler.py)
    from tests.alerts.test_deploy import handler_arn

    arn = handler_arn(aws)
    lam = LambdaAction(aws("lambda"), arn)
    notification = AlarmNotification("a", "a", ALARM, OK, "r", T0, ("x-1",))
    lam(notification)
    assert lam.last_response["StatusCode"] == 202
    assert LambdaAction.payload(notification)["correlationIds"] == ["x-1"]
