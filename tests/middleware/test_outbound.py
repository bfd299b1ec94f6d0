"""Outbound propagation, observed on the receiving side: a real uvicorn server for HTTP, moto for AWS.

The AWS round trips end in the Lambda wrapper: what a consumer Lambda would receive is built from what moto
actually delivered, and ``correlated_handler`` must find the ID in it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import httpx
import pytest
import requests
from corrtrace.middleware import CorrelationIdMiddleware, correlated_handler
from corrtrace.middleware.outbound import (
    async_httpx_event_hooks,
    instrument_boto3,
    instrument_httpx,
    instrument_requests,
)
from corrtrace.middleware.settings import CorrelationSettings

import corrtrace

from .conftest import LogCapture, UvicornServer

CID = "0192f0c1-7a3b-7c4d-9e5f-0123456789ab"


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Downstream service: reports the headers it received and the ID its own middleware bound."""
    if scope["type"] != "http":
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    body = json.dumps({"headers": headers, "bound": corrtrace.get_correlation_id()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture()
def downstream(uvicorn_server: Callable[[Any], UvicornServer]) -> Any:
    with uvicorn_server(CorrelationIdMiddleware(echo_app, access_log=False)) as server:
        yield server


def _settings(server: UvicornServer) -> CorrelationSettings:
    return CorrelationSettings(service_map={f"127.0.0.1:{server.port}": "inventory"})


def _check(payload: dict[str, Any], logs: LogCapture) -> None:
    assert payload["headers"]["x-correlation-id"] == CID
    assert payload["bound"] == CID  # the downstream service runs under the caller's ID
    (line,) = logs.events("corrtrace.outbound")
    assert line["correlation_id"] == CID and line["event"]["action"] == "http-request"
    assert line["service"]["target"]["name"] == "inventory" and line["http"]["response"]["status_code"] == 200
    assert line["event"]["duration"] > 0


def test_httpx_sync(downstream: UvicornServer, logs: LogCapture) -> None:
    client = instrument_httpx(httpx.Client(), _settings(downstream))
    with client, corrtrace.bind_correlation_id(CID):
        response = client.get(downstream.url + "/stock")
    assert response.headers["x-correlation-id"] == CID
    _check(response.json(), logs)


async def test_httpx_async(downstream: UvicornServer, logs: LogCapture) -> None:
    async with httpx.AsyncClient(event_hooks=async_httpx_event_hooks(_settings(downstream))) as client:
        with corrtrace.bind_correlation_id(CID):
            response = await client.get(downstream.url + "/stock")
    _check(response.json(), logs)


def test_requests_session(downstream: UvicornServer, logs: LogCapture) -> None:
    session = instrument_requests(requests.Session(), _settings(downstream))
    with session, corrtrace.bind_correlation_id(CID):
        response = session.get(downstream.url + "/stock", timeout=10)
    _check(response.json(), logs)


def test_no_header_outside_a_request_and_caller_header_wins(downstream: UvicornServer, logs: LogCapture) -> None:
    with instrument_httpx(httpx.Client()) as client:
        outside = client.get(downstream.url).json()
        with corrtrace.bind_correlation_id(CID):
            explicit = client.get(downstream.url, headers={"X-Correlation-ID": "set-by-caller"}).json()
    assert UUID_LIKE(outside["bound"]) and outside["headers"].get("x-correlation-id") is None
    assert explicit["headers"]["x-correlation-id"] == "set-by-caller"
    assert len(logs.events("corrtrace.outbound")) == 1  # only the call made under an ID is an edge


def UUID_LIKE(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


# --- AWS through moto -------------------------------------------------------------------------------------------


@pytest.fixture()
def session(moto_url: str) -> boto3.Session:
    s = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    instrument_boto3(s, propagate_dynamodb=True, propagate_kinesis=True)
    return s


def _client(session: boto3.Session, moto_url: str, service: str) -> Any:
    return session.client(service, endpoint_url=moto_url)


def _sqs_record(message: dict[str, Any], arn: str) -> dict[str, Any]:
    """A Lambda SQS record built from what ReceiveMessage returned (the shape the event source mapping sends)."""
    attributes = {
        name: {"stringValue": a.get("StringValue"), "dataType": a["DataType"]}
        for name, a in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {},
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }


def _queue(sqs: Any) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _receive_event(sqs: Any, url: str, arn: str, count: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
        )
        messages += got.get("Messages", [])
        if len(messages) >= count:
            break
    assert len(messages) == count
    return {"Records": [_sqs_record(m, arn) for m in messages]}


def _ids_seen(event: dict[str, Any]) -> list[str | None]:
    seen: list[str | None] = []

    @correlated_handler(record_handler=True)
    def consumer(record: Any, context: Any) -> None:
        seen.append(corrtrace.get_correlation_id())

    assert consumer(event, None) == {"batchItemFailures": []}
    return seen


def test_sqs_send_and_batch_reach_the_consumer(session: boto3.Session, moto_url: str, logs: LogCapture) -> None:
    sqs = _client(session, moto_url, "sqs")
    url, arn = _queue(sqs)
    with corrtrace.bind_correlation_id("sqs-single"):
        sqs.send_message(QueueUrl=url, MessageBody="one")
    with corrtrace.bind_correlation_id("sqs-batch"):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}])
    event = _receive_event(sqs, url, arn, 3)
    assert sorted(str(i) for i in _ids_seen(event)) == ["sqs-batch", "sqs-batch", "sqs-single"]
    lines = logs.events("corrtrace.outbound")
    assert [(e["event"]["action"], e["correlation_id"]) for e in lines] == [
        ("sqs-send", "sqs-single"),
        ("sqs-send", "sqs-batch"),
    ]
    assert lines[0]["service"]["target"]["name"] == url.rsplit("/", 1)[-1]
    assert lines[0]["http"]["response"]["status_code"] == 200


def test_sqs_ten_attribute_limit_is_respected(session: boto3.Session, moto_url: str) -> None:
    sqs = _client(session, moto_url, "sqs")
    url, arn = _queue(sqs)
    full = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    nine = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(9)}
    with corrtrace.bind_correlation_id("limit"):
        sqs.send_message(QueueUrl=url, MessageBody="full", MessageAttributes=full)  # would fail with an 11th
        sqs.send_message(QueueUrl=url, MessageBody="nine", MessageAttributes=nine)
    event = _receive_event(sqs, url, arn, 2)
    by_body = {r["body"]: r["messageAttributes"] for r in event["Records"]}
    assert "correlation_id" not in by_body["full"] and len(by_body["full"]) == 10
    assert by_body["nine"]["correlation_id"]["stringValue"] == "limit"
    assert full == {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}  # caller's dict intact


def test_sns_publish_reaches_an_sqs_subscriber(session: boto3.Session, moto_url: str) -> None:
    sqs, sns = _client(session, moto_url, "sqs"), _client(session, moto_url, "sns")
    url, arn = _queue(sqs)
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    with corrtrace.bind_correlation_id("sns-pub"):
        sns.publish(TopicArn=topic, Message=json.dumps({"order": 1}))
    event = _receive_event(sqs, url, arn, 1)
    envelope = json.loads(event["Records"][0]["body"])
    assert envelope["MessageAttributes"]["correlation_id"]["Value"] == "sns-pub"
    assert _ids_seen(event) == ["sns-pub"]
    sns_event = {"Records": [{"EventSource": "aws:sns", "Sns": envelope}]}  # the same message, SNS -> Lambda
    assert _ids_seen(sns_event) == ["sns-pub"]


def test_sns_ten_attribute_limit_is_respected(session: boto3.Session, moto_url: str) -> None:
    sqs, sns = _client(session, moto_url, "sqs"), _client(session, moto_url, "sns")
    url, arn = _queue(sqs)
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    full = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    with corrtrace.bind_correlation_id("sns-full"):
        sns.publish(TopicArn=topic, Message="full", MessageAttributes=full)
    envelope = json.loads(_receive_event(sqs, url, arn, 1)["Records"][0]["body"])
    assert len(envelope["MessageAttributes"]) == 10 and "correlation_id" not in envelope["MessageAttributes"]


def test_eventbridge_rule_to_sqs_target(session: boto3.Session, moto_url: str, logs: LogCapture) -> None:
    sqs, events = _client(session, moto_url, "sqs"), _client(session, moto_url, "events")
    url, arn = _queue(sqs)
    rule = f"r-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["shop.orders"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    with corrtrace.bind_correlation_id("eb-put"):
        events.put_events(Entries=[{"Source": "shop.orders", "DetailType": "OrderPlaced", "Detail": '{"order": 7}'}])
    event = _receive_event(sqs, url, arn, 1)
    delivered = json.loads(event["Records"][0]["body"])
    assert delivered["detail"] == {"order": 7, "correlation_id": "eb-put"}
    assert _ids_seen(event) == ["eb-put"]
    seen = correlated_handler(lambda e, c: corrtrace.get_correlation_id())(delivered)  # EventBridge -> Lambda
    assert seen == "eb-put"
    assert logs.events("corrtrace.outbound")[0]["event"]["action"] == "eventbridge-put"


def test_dynamodb_item_and_stream(session: boto3.Session, moto_url: str) -> None:
    ddb = _client(session, moto_url, "dynamodb")
    table = f"orders-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    with corrtrace.bind_correlation_id("ddb-put"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "o-1"}})
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "o-1"}})["Item"]
    assert item["correlation_id"] == {"S": "ddb-put"}
    streams = _client(session, moto_url, "dynamodbstreams")
    stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    event = json.loads(json.dumps({"Records": records}, default=str))
    for record in event["Records"]:
        record["eventSource"] = "aws:dynamodb"
    assert _ids_seen(event) == ["ddb-put"]


def test_kinesis_record(session: boto3.Session, moto_url: str) -> None:
    kinesis = _client(session, moto_url, "kinesis")
    stream = f"s-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    with corrtrace.bind_correlation_id("kin-put"):
        kinesis.put_record(StreamName=stream, Data=json.dumps({"order": 3}).encode(), PartitionKey="p")
        kinesis.put_records(StreamName=stream, Records=[{"Data": b'{"order": 4}', "PartitionKey": "p"}])
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [json.loads(r["Data"]) for r in records] == [
        {"order": 3, "correlation_id": "kin-put"},
        {"order": 4, "correlation_id": "kin-put"},
    ]
    event = {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "kinesis": {
                    "data": base64.b64encode(r["Data"]).decode(),
                    "sequenceNumber": r["SequenceNumber"],
                    "partitionKey": r["PartitionKey"],
                },
            }
            for r in records
        ]
    }
    assert _ids_seen(event) == ["kin-put", "kin-put"]


def test_dynamodb_and_kinesis_are_opt_in(moto_url: str) -> None:
    plain = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    instrument_boto3(plain)
    ddb = plain.client("dynamodb", endpoint_url=moto_url)
    ddb.create_table(
        TableName="plain",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with corrtrace.bind_correlation_id("not-stored"):
        ddb.put_item(TableName="plain", Item={"pk": {"S": "x"}})
    assert "correlation_id" not in ddb.get_item(TableName="plain", Key={"pk": {"S": "x"}})["Item"]


def test_instrument_one_client(moto_url: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    instrument_boto3(sqs)
    url, arn = _queue(sqs)
    with corrtrace.bind_correlation_id("client-level"):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert _ids_seen(_receive_event(sqs, url, arn, 1)) == ["client-level"]
    with pytest.raises(TypeError, match="boto3/botocore Session or client"):
        instrument_boto3(object())
