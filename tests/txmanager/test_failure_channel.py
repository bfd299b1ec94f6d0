"""The failure channel (issue 16): services write failure reports to a DynamoDB table with a stream (or a queue,
SNS into a queue, Kinesis); the trigger reads them with Lambda's semantics and starts the transactions.

Everything is real: moto over HTTP with the real DynamoDB Streams, SQS, SNS and Kinesis APIs, the manager and
the participants as uvicorn servers, the local event-source mappings of ``corrtrace.eventsource``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner
from corrtrace.txmanager import FailureChannel, TxManagerClient, create_app, report_failure, triggers
from corrtrace.txmanager.failures import create_resources
from corrtrace.txmanager.follow import build_follower, poller_settings
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.store import Store

from corrtrace import new_correlation_id
from corrtrace.cli import main
from corrtrace.eventsource import LambdaContext
from tests.txmanager.conftest import SECRET, Recorder, ServerThread, participant_app

FAST = {"retry_delay": 0.05, "max_retry_delay": 0.3, "poll_interval": 0.05}


class Cluster:
    """Participants ``a`` and ``b`` (real servers) and a manager that can be stopped and started on its port."""

    def __init__(
        self,
        settings: TxManagerSettings,
        store: Store,
        servers: Callable[[Any, int], ServerThread],
        free_port: Callable[[], int],
    ) -> None:
        self.settings, self.store, self.servers = settings, store, servers
        self.recorders = {"a": Recorder("a"), "b": Recorder("b")}
        self.urls = {n: servers(participant_app(r), free_port()).url for n, r in self.recorders.items()}
        self.port = int(str(settings.manager_url).rsplit(":", 1)[1])
        self.manager: ServerThread | None = None
        self.client = TxManagerClient(str(settings.manager_url), SECRET, timeout=30)

    def start(self) -> None:
        self.manager = self.servers(create_app(self.settings, store=self.store), self.port)

    def stop(self) -> None:
        assert self.manager is not None
        self.manager.stop()
        self.manager = None

    def register(self, cid: str) -> None:
        """What the manager's registration endpoint does (its own test is elsewhere), without the HTTP round trip."""
        for name, base in self.urls.items():
            self.store.register(cid, name, f"{base}/corrtrace/rollback/{{id}}", f"{base}/corrtrace/commit/{{id}}")

    def rolled_back(self, cid: str) -> bool:
        return bool(self.store.get(cid) and self.store.get(cid).state == "rolled_back")  # type: ignore[union-attr]

    def effects(self, name: str) -> list[str]:
        return [cid for action, cid, _ in self.recorders[name].effects if action == "rollback"]


@pytest.fixture()
def cluster(channel_settings: TxManagerSettings, store: Store, servers: Any, free_port: Any) -> Iterator[Cluster]:
    made = Cluster(channel_settings, store, servers, free_port)
    yield made
    made.client.close()


def _wait(predicate: Callable[[], bool], timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


def _following(follower: Any) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    yield None
    stop.set()
    thread.join(timeout=10)


def _dlq(aws: Any, settings: TxManagerSettings) -> list[dict[str, Any]]:
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=settings.failure_dlq)["QueueUrl"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


def test_fifty_failures_reported_while_the_manager_is_down_are_all_rolled_back_once(
    cluster: Cluster, channel_settings: TxManagerSettings, aws: Any
) -> None:
    create_resources(channel_settings)
    cluster.start()
    cids = [new_correlation_id() for _ in range(50)]
    for cid in cids:
        cluster.register(cid)
    cluster.stop()  # the manager is down from here on

    channel = FailureChannel(channel_settings, "payment")
    reports = [channel.report(cid, "card declined") for cid in cids]  # each returns once stored
    assert [r.correlation_id for r in reports] == cids and all(r.source == "payment" for r in reports)
    follower = build_follower(channel_settings, poller=poller_settings(**FAST))
    for _ in _following(follower):
        _wait(lambda: follower.stats.retries >= 3, what="the stream retrying while the manager is down")
        assert follower.stats.records == 0 and not any(cluster.effects(n) for n in "ab")
        cluster.start()
        _wait(lambda: all(cluster.rolled_back(cid) for cid in cids), what="all 50 rolled back")
    for name in "ab":
        assert sorted(cluster.effects(name)) == sorted(cids), f"{name} did not roll each request back exactly once"
    assert all(cluster.store.get(cid).source == "payment" for cid in cids)  # type: ignore[union-attr]
    assert not follower.stats.skipped and _dlq(aws, channel_settings) == []


def test_duplicates_and_same_id_in_one_batch_start_one_transaction(
    cluster: Cluster, channel_settings: TxManagerSettings, aws: Any
) -> None:
    create_resources(channel_settings)
    cluster.start()
    once, twice = new_correlation_id(), new_correlation_id()
    cluster.register(once)
    cluster.register(twice)
    channel = FailureChannel(channel_settings, "catalog")
    for _ in range(3):  # three reports of one failure land in one batch
        channel.report(once, "out of stock")
    follower = build_follower(channel_settings, poller=poller_settings(**FAST, parallelization_factor=1))
    assert follower.poll_once() == 3 and follower.stats.invocations == 1
    channel.report(twice, "out of stock")
    follower.poll_once()
    channel.report(twice, "out of stock, again")  # a later batch: a duplicate of a running or finished rollback
    follower.poll_once()
    _wait(lambda: cluster.rolled_back(once) and cluster.rolled_back(twice))
    assert cluster.store.get(once).triggers == 3 and cluster.store.get(twice).triggers == 2  # type: ignore[union-attr]
    for name in "ab":
        assert sorted(cluster.effects(name)) == sorted([once, twice])
        assert cluster.recorders[name].hits["rollback"] == 2


def test_malformed_record_goes_to_the_on_failure_queue_without_blocking_the_next(
    cluster: Cluster, channel_settings: TxManagerSettings, aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    create_resources(channel_settings)
    cluster.start()
    good = [new_correlation_id() for _ in range(2)]
    for cid in good:
        cluster.register(cid)
    channel = FailureChannel(channel_settings, "payment")
    channel.report(good[0], "declined")
    aws("dynamodb").put_item(
        TableName=channel_settings.failure_target,
        Item={
            "correlation_id": {"S": "not a valid id!"},
            "report_id": {"S": "r-1"},
            "action": {"S": "explode"},
        },
    )
    channel.report(good[1], "declined")
    follower = build_follower(channel_settings, poller=poller_settings(**FAST, parallelization_factor=1))
    with caplog.at_level(logging.INFO, logger="corrtrace.txmanager"):
        follower.poll_once()
    _wait(lambda: all(cluster.rolled_back(cid) for cid in good))
    assert follower.stats.retries == 0 and follower.stats.partial_failures == 0  # nothing jammed
    dead = _dlq(aws, channel_settings)
    assert len(dead) == 1 and dead[0]["error"].startswith("malformed failure record: correlation_id")
    assert dead[0]["record"]["dynamodb"]["NewImage"]["action"] == {"S": "explode"}
    lines = [r.getMessage() for r in caplog.records if "on-failure queue" in r.getMessage()]
    assert len(lines) == 1 and channel_settings.failure_dlq in lines[0] and "malformed" in lines[0]
    assert "\n" not in lines[0] and len(lines[0]) < 400  # one short line, the bad value only as a safe excerpt


def test_a_stream_reports_the_first_failure_and_stops_that_shard(
    cluster: Cluster, channel_settings: TxManagerSettings, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manager down: the first record fails, the records behind it are not even read (not in the DLQ either)."""
    create_resources(channel_settings)
    channel = FailureChannel(channel_settings, "payment")
    channel.report(new_correlation_id(), "declined")
    aws("dynamodb").put_item(
        TableName=channel_settings.failure_target,
        Item={
            "correlation_id": {"S": "x"},
            "report_id": {"S": "r-2"},
            "action": {"S": "explode"},
        },
    )
    channel.report(new_correlation_id(), "declined")
    follower = build_follower(channel_settings)
    records = follower.read()
    assert len(records) == 3
    # the Lambda entry point, configured from the environment as in AWS
    for key, value in {
        "FAILURE_TARGET": channel_settings.failure_target,
        "FAILURE_DLQ": channel_settings.failure_dlq,
        "FAILURE_ENDPOINT": str(channel_settings.failure_endpoint),
        "MANAGER_URL": str(channel_settings.manager_url),
        "SECRET": SECRET,
    }.items():
        monkeypatch.setenv(f"CORRTRACE_TXMANAGER_{key}", value)
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    monkeypatch.setattr(triggers, "_trigger", None)
    result = triggers.handler({"Records": records}, LambdaContext("corrtrace-txmanager-trigger"))
    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    assert _dlq(aws, channel_settings) == []


def test_sqs_visibility_shorter_than_the_outage_loses_nothing(
    cluster: Cluster, channel_settings: TxManagerSettings, aws: Any
) -> None:
    """Visibility timeout 1 s, maxReceiveCount 3, manager down 5 s: without the trigger's backoff each message
    would be received 5 times and moved to the dead-letter queue; with it, 3 receives suffice."""
    settings = replace(channel_settings, failure_channel="sqs")
    sqs = aws("sqs")
    dlq = sqs.create_queue(QueueName=settings.failure_dlq)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(
        QueueName=settings.failure_target,
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}),
        },
    )
    cids = [new_correlation_id() for _ in range(10)]
    cluster.start()
    for cid in cids:
        cluster.register(cid)
    cluster.stop()
    for cid in cids:
        report_failure(cid, "declined", source="payment", settings=settings)
    follower = build_follower(settings, poller=poller_settings(**FAST))
    for _ in _following(follower):
        time.sleep(5.0)
        assert not any(cluster.effects(n) for n in "ab")
        cluster.start()
        _wait(lambda: all(cluster.rolled_back(cid) for cid in cids), what="all 10 rolled back")
    for name in "ab":
        assert sorted(cluster.effects(name)) == sorted(cids)
    assert _dlq(aws, settings) == []


def test_sns_into_sqs_and_kinesis_channels(cluster: Cluster, channel_settings: TxManagerSettings, aws: Any) -> None:
    cluster.start()
    for kind in ("sns", "kinesis"):
        settings = replace(channel_settings, failure_channel=kind, failure_target=f"{kind}-{uuid.uuid4().hex[:6]}")
        create_resources(settings)
        cid = new_correlation_id()
        cluster.register(cid)
        FailureChannel(settings, "checkout").report(cid, f"via {kind}")
        follower = build_follower(settings, poller=poller_settings(**FAST))
        _wait(lambda f=follower: f.poll_once() > 0, what=f"the {kind} record")  # type: ignore[misc]
        _wait(lambda c=cid: cluster.rolled_back(c), what=f"the {kind} rollback")  # type: ignore[misc]
        assert cluster.store.get(cid).reason == f"via {kind}"  # type: ignore[union-attr]


def test_init_creates_the_failure_table_with_a_stream_or_the_queue_with_its_dlq(
    moto_url: str, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    monkeypatch.setenv("CORRTRACE_TXMANAGER_DYNAMODB_ENDPOINT", moto_url)
    runner = CliRunner()
    made = runner.invoke(main, ["txmanager", "init", "--json"])
    assert made.exit_code == 0, made.output
    channel = json.loads(made.output)["failure_channel"]
    assert channel["table"] == "corrtrace-failures" and channel["created"] is True
    table = aws("dynamodb").describe_table(TableName="corrtrace-failures")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert channel["stream_arn"] == table["LatestStreamArn"]
    again = json.loads(runner.invoke(main, ["txmanager", "init", "--json"]).output)
    assert again["failure_channel"]["created"] is False

    monkeypatch.setenv("CORRTRACE_TXMANAGER_FAILURE_CHANNEL", "sqs")
    made = runner.invoke(main, ["txmanager", "init", "--json"])
    queue = json.loads(made.output)["failure_channel"]["queue"]
    attrs = aws("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith(":corrtrace-failures-dlq")

    monkeypatch.setenv("CORRTRACE_TXMANAGER_FAILURE_CHANNEL", "carrier-pigeon")
    bad = runner.invoke(main, ["txmanager", "init"])
    assert bad.exit_code == 2 and "txmanager.failure_channel" in bad.output


def test_a_report_carries_the_trace_when_tracing_is_on() -> None:
    from corrtrace.middleware import otel
    from corrtrace.txmanager.failures import new_record
    from opentelemetry.sdk.trace import TracerProvider

    cid = new_correlation_id()
    assert new_record(cid, "declined", "rollback", "payment").trace_id is None
    otel.install()
    try:
        with TracerProvider().get_tracer("test").start_as_current_span("charge") as span:
            record = new_record(cid, "declined", "rollback", "payment")
    finally:
        otel.uninstall()
    context = span.get_span_context()
    assert (record.trace_id, record.span_id) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    assert record.as_dict()["trace_id"] == record.trace_id and record.reported_at.endswith("Z")


def test_sns_event_and_bad_kinesis_data(cluster: Cluster, channel_settings: TxManagerSettings, aws: Any) -> None:
    """A Lambda subscribed to the topic gets SNS events; Kinesis data that is not base64 JSON is malformed."""
    create_resources(channel_settings)
    cluster.start()
    cid = new_correlation_id()
    cluster.register(cid)
    report = {
        "correlation_id": cid,
        "action": "rollback",
        "reason": "declined",
        "source": "payment",
        "reported_at": "2026-11-30T12:00:00.000Z",
        "report_id": "r-sns",
    }
    event = {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"MessageId": "m-1", "Message": json.dumps(report)}},
            {"EventSource": "aws:sns", "Sns": {"MessageId": "m-2", "Message": "[1, 2]"}},
        ]
    }
    trigger = triggers.FailureTrigger(channel_settings)
    assert trigger.handle(event) == {"batchItemFailures": []}
    _wait(lambda: cluster.rolled_back(cid))
    bad = {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "eventID": "shardId-000:1",
                "kinesis": {"sequenceNumber": "1", "partitionKey": "k", "data": "%%%not base64"},
            }
        ]
    }
    assert trigger.handle(bad) == {"batchItemFailures": []}
    errors = sorted(d["error"] for d in _dlq(aws, channel_settings))
    assert errors == [f"malformed failure record: {why}" for why in ("kinesis data: not base64", "not a JSON object")]
