"""Tracing across messages: with tracing on, SQS/SNS attributes and EventBridge detail carry traceparent and
baggage (the ID a member), and the Lambda batch handler continues the trace per record. Real boto3 against
moto over HTTP; spans from the OTel SDK's in-memory exporter."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from corrtrace.middleware import correlated_handler
from corrtrace.middleware import otel as ct_otel
from corrtrace.middleware.outbound import instrument_boto3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import corrtrace

from .test_outbound import _client, _queue, _receive_event


@pytest.fixture()
def traced(moto_url: str) -> Iterator[tuple[boto3.Session, TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    instrument_boto3(session, tracing=True)
    try:
        yield session, provider, exporter
    finally:
        ct_otel.uninstall()


def consume(event: dict[str, Any], provider: TracerProvider, fail: str | None = None) -> dict[str, Any]:
    @correlated_handler(record_handler=True, tracing=True, tracer_provider=provider)
    def handle(record: Any, context: Any) -> None:
        if fail is not None and corrtrace.get_correlation_id() == fail:
            raise RuntimeError("poison")

    return handle(event, None)  # type: ignore[no-any-return]


def test_sqs_sns_and_eventbridge_carry_the_trace_to_the_batch_handler(traced: Any, moto_url: str) -> None:
    session, provider, exporter = traced
    sqs, sns, events = (_client(session, moto_url, s) for s in ("sqs", "sns", "events"))
    url, arn = _queue(sqs)
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    rule = f"r-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["shop.orders"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    tracer = provider.get_tracer("producer")
    senders = {}
    for cid, send in [
        ("m-sqs", lambda: sqs.send_message(QueueUrl=url, MessageBody="plain")),
        ("m-sns", lambda: sns.publish(TopicArn=topic, Message="via sns")),
        ("m-eb", lambda: events.put_events(Entries=[{"Source": "shop.orders", "DetailType": "X", "Detail": "{}"}])),
    ]:
        with tracer.start_as_current_span(f"send {cid}") as span, corrtrace.bind_correlation_id(cid):
            send()
        senders[cid] = span.get_span_context()
    event = _receive_event(sqs, url, arn, 3)
    bodies = {r["body"] for r in event["Records"]}
    eb = next(json.loads(b) for b in bodies if b.startswith("{") and "detail" in json.loads(b))
    assert eb["detail"]["traceparent"].split("-")[1] == format(senders["m-eb"].trace_id, "032x")
    assert "correlation_id=m-eb" in eb["detail"]["baggage"]
    plain = next(r for r in event["Records"] if r["body"] == "plain")
    assert plain["messageAttributes"]["baggage"]["stringValue"] == "correlation_id=m-sqs"

    exporter.clear()
    assert consume(event, provider, fail="m-sns") == {
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if "via sns" in r["body"]]
    }
    spans = {s.attributes["correlation_id"]: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"m-sqs", "m-sns", "m-eb"}
    for cid, sender in senders.items():
        span = spans[cid]
        assert span.kind is SpanKind.CONSUMER and span.name == "sqs process"
        assert span.context.trace_id == sender.trace_id and span.parent is not None
        assert span.parent.span_id == sender.span_id  # continued: a child of the sending span
    assert spans["m-sns"].status.status_code is StatusCode.ERROR
    assert spans["m-sqs"].status.status_code is StatusCode.UNSET


def test_trace_attributes_respect_the_ten_attribute_limit_and_tracing_off_adds_none(traced: Any, moto_url: str) -> None:
    session, provider, _ = traced
    sqs = _client(session, moto_url, "sqs")
    url, arn = _queue(sqs)
    eight = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(8)}
    with provider.get_tracer("p").start_as_current_span("send"), corrtrace.bind_correlation_id("lim"):
        sqs.send_message(QueueUrl=url, MessageBody="eight", MessageAttributes=eight)
    ct_otel.uninstall()  # tracing off again: only the ID travels
    with corrtrace.bind_correlation_id("off"):
        sqs.send_message(QueueUrl=url, MessageBody="off")
    records = {r["body"]: r["messageAttributes"] for r in _receive_event(sqs, url, arn, 2)["Records"]}
    assert len(records["eight"]) == 10 and "baggage" not in records["eight"]  # the ID first, then traceparent
    assert records["eight"]["correlation_id"]["stringValue"] == "lim" and "traceparent" in records["eight"]
    assert set(records["off"]) == {"correlation_id"}
