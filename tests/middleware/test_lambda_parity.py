"""Lambda parity with Powertools: correlation_id_path (JMESPath, Powertools' names), requestId/aws_request_id
fallback, X-Ray trace.id in log lines, the real Powertools Logger agreeing on the ID, dict-like records."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from corrtrace.middleware import correlated_handler, iter_records
from corrtrace.middleware.aws_lambda import correlation_paths

import corrtrace

from .conftest import UUID7, LogCapture, load_fixture
from .test_lambda import Context

API_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def seen(event: Any, context: Any) -> str | None:
    return corrtrace.get_correlation_id()


def test_correlation_id_path_custom_and_powertools_names() -> None:
    custom = correlated_handler(seen, correlation_id_path="detail.meta.cid")
    assert custom({"detail-type": "x", "detail": {"meta": {"cid": "path-id-1"}}}, Context()) == "path-id-1"
    # the path finds nothing: the source's own carrier still counts
    assert custom({"detail-type": "x", "detail": {"correlation_id": "carried-1"}}, Context()) == "carried-1"

    api = load_fixture("apiGatewayProxyEvent.json")
    api["requestContext"]["requestId"] = API_REQUEST_ID
    rest = correlated_handler(
        lambda e, c: {"statusCode": 200, "body": seen(e, c)}, correlation_id_path=correlation_paths.API_GATEWAY_REST
    )
    assert rest(api, Context())["body"] == API_REQUEST_ID  # the path wins over the header
    bridge = correlated_handler(seen, correlation_id_path=correlation_paths.EVENT_BRIDGE)
    event = load_fixture("eventBridgeEvent.json")
    assert bridge(event, Context()) == event["id"]
    with pytest.raises(ValueError, match="not a JMESPath expression"):
        correlated_handler(seen, correlation_id_path="detail.[")


def test_fallback_to_request_id_then_aws_request_id_only_when_no_id_is_there() -> None:
    handle = correlated_handler(lambda e, c: {"statusCode": 200, "body": seen(e, c)})
    api = load_fixture("apiGatewayProxyV2Event.json")
    del api["headers"]["x-correlation-id"]
    api["requestContext"]["requestId"] = API_REQUEST_ID
    assert handle(api, Context())["body"] == API_REQUEST_ID
    api["requestContext"]["requestId"] = "not valid="  # an unusable requestId: aws_request_id is next
    assert handle(api, Context(aws_request_id="req-77"))["body"] == "req-77"
    assert UUID7.fullmatch(handle(api, None)["body"])  # neither: a fresh one
    direct = correlated_handler(seen)
    assert direct({"order": 1}, Context(aws_request_id="req-78")) == "req-78"
    api["headers"]["x-correlation-id"] = "bad id\r\n"  # there but invalid: a fresh ID, never a fallback
    assert UUID7.fullmatch(handle(api, Context(aws_request_id="req-79"))["body"])


def test_xray_trace_id_in_log_lines(logs: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    correlated_handler(lambda e, c: logging.getLogger("fn").info("traced"))(load_fixture("directInvocation.json"))
    (line,) = [e for e in logs.events() if e["message"] == "traced"]
    assert line["trace"]["id"] == "1-5759e988-bd862e3fe1be46a994272793" and line["correlation_id"] == "direct-id"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=evil\r\nvalue;Sampled=1")
    correlated_handler(lambda e, c: logging.getLogger("fn").info("junk"))(load_fixture("directInvocation.json"))
    (junk,) = [e for e in logs.events() if e["message"] == "junk"]
    assert "trace" not in junk


def test_powertools_logger_gets_the_same_id() -> None:
    buffer = io.StringIO()
    powertools = Logger(service="orders-pt", logger_handler=logging.StreamHandler(buffer))

    @correlated_handler
    def handle(event: Any, context: Any) -> None:
        powertools.info("from powertools")

    handle(load_fixture("directInvocation.json"), Context())

    @correlated_handler(record_handler=True)
    def handle_record(record: Any, context: Any) -> None:
        powertools.info("record")

    handle_record(load_fixture("sqsEvent.json"), Context())
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [(e["message"], e["correlation_id"]) for e in lines] == [
        ("from powertools", "direct-id"),
        ("record", "sqs-record-1"),
        ("record", "sqs-record-2-body"),
    ]
    assert powertools.get_correlation_id() is None  # put back after the invocation


def test_batch_records_index_like_the_raw_event() -> None:
    event = load_fixture("sqsEvent.json")
    first, second = iter_records(event)
    assert first["body"] == "Test message." and first.raw_event is event["Records"][0]
    assert "messageAttributes" in first and first.get("missing", 7) == 7 and len(first) == len(event["Records"][0])
    assert second["messageId"] == second.message_id and list(second) == list(event["Records"][1])
    with pytest.raises(KeyError):
        first["nope"]
