"""Lambda: every event source yields the right ID per record; batch failures; Lambda log fields; HTTP echo."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from corrtrace.middleware import CorrelatedBatch, correlated_handler, iter_records, process_batch
from corrtrace.middleware.aws_lambda import handler as handler_module

import corrtrace

from .conftest import UUID7, LogCapture, load_fixture


@dataclass
class Context:
    function_name: str = "orders-fn"
    aws_request_id: str = "req-0001"
    function_version: str = "$LATEST"


def _seen(event: Any, context: Any) -> str | None:
    return corrtrace.get_correlation_id()


SINGLE = [
    ("apiGatewayProxyEvent.json", "apigw-v1-id"),
    ("apiGatewayProxyEventMultiOnly.json", "apigw-v1-multi-id"),
    ("apiGatewayProxyV2Event.json", "apigw-v2-id"),
    ("albEvent.json", "alb-id"),
    ("albMultiValueHeadersEvent.json", "alb-multi-id"),
    ("lambdaFunctionUrlEventWithHeaders.json", "function-url-id"),
    ("eventBridgeEvent.json", "eventbridge-id"),
    ("directInvocation.json", "direct-id"),
    ("snsEvent.json", "sns-record-1"),
    ("snsSqsEvent.json", "sns-in-sqs-id"),
]
BATCHES = [
    ("sqsEvent.json", ["sqs-record-1", "sqs-record-2-body"]),
    ("dynamoStreamEvent.json", ["dynamodb-record-1", "dynamodb-record-2"]),
    ("kinesisStreamEvent.json", ["kinesis-record-1", "kinesis-record-2"]),
    ("snsEvent.json", ["sns-record-1"]),
    ("snsSqsEvent.json", ["sns-in-sqs-id"]),
]


@pytest.mark.parametrize(("fixture", "expected"), SINGLE)
def test_invocation_runs_under_the_event_id(fixture: str, expected: str) -> None:
    event = load_fixture(fixture)
    result = correlated_handler(lambda e, c: {"statusCode": 200, "body": _seen(e, c)})(event, Context())
    assert result["body"] == expected
    assert corrtrace.get_correlation_id() is None


@pytest.mark.parametrize(("fixture", "expected"), BATCHES)
def test_each_record_runs_under_its_own_id(fixture: str, expected: list[str]) -> None:
    seen: list[tuple[str, str | None]] = []

    @correlated_handler(record_handler=True)
    def handle(record: Any, context: Any) -> None:
        seen.append((record.identifier, corrtrace.get_correlation_id()))
        assert record.correlation_id == corrtrace.get_correlation_id()

    assert handle(load_fixture(fixture), Context()) == {"batchItemFailures": []}
    assert [cid for _, cid in seen] == expected
    assert all(identifier for identifier, _ in seen)


def test_empty_batch_runs_nothing() -> None:
    calls: list[Any] = []
    handle = correlated_handler(lambda record, context: calls.append(record), record_handler=True)
    assert handle({"Records": []}, Context()) == {"batchItemFailures": []} and calls == []


def test_records_without_an_id_get_fresh_distinct_ones() -> None:
    event = load_fixture("sqsEvent.json")
    for record in event["Records"]:
        record["messageAttributes"] = {}
        record["body"] = "plain text"
    ids = [r.correlation_id for r in iter_records(event)]
    assert len(set(ids)) == 2 and all(UUID7.fullmatch(i or "") for i in ids)


def test_poison_record_is_reported_and_the_rest_processed(logs: LogCapture) -> None:
    event = load_fixture("sqsEvent.json")
    done: list[str] = []

    def handle(record: Any) -> None:
        if record.correlation_id == "sqs-record-1":
            raise ValueError("poison")
        done.append(record.message_id)

    result = process_batch(event, handle)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert done == [event["Records"][1]["messageId"]]
    (failure,) = [e for e in logs.events() if e["log"]["level"] == "ERROR"]
    assert failure["correlation_id"] == "sqs-record-1" and failure["error"]["type"] == "ValueError"


def test_kinesis_and_dynamodb_failures_use_sequence_numbers() -> None:
    for fixture, pick in (("kinesisStreamEvent.json", "kinesis"), ("dynamoStreamEvent.json", "dynamodb")):
        event = load_fixture(fixture)
        second = event["Records"][1]
        expected = second["kinesis"]["sequenceNumber"] if pick == "kinesis" else second["dynamodb"]["SequenceNumber"]
        batch = CorrelatedBatch(event)
        for i, record in enumerate(batch):
            if i == 1:
                batch.fail(record)
        assert batch.response() == {"batchItemFailures": [{"itemIdentifier": expected}]}


def test_fifo_queue_reports_everything_after_the_first_failure() -> None:
    event = load_fixture("sqsEvent.json")
    event["Records"].append(copy.deepcopy(event["Records"][1]) | {"messageId": "third"})
    for record in event["Records"]:
        record["eventSourceARN"] += ".fifo"
    ran: list[str] = []

    def handle(record: Any) -> None:
        ran.append(record.message_id)
        raise RuntimeError("first fails")

    result = process_batch(event, handle)
    assert ran == [event["Records"][0]["messageId"]]
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [r["messageId"] for r in event["Records"]]


def test_lambda_fields_in_log_lines_and_cold_start(logs: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module, "_cold_start", True)
    log = logging.getLogger("orders")

    @correlated_handler
    def handle(event: Any, context: Any) -> None:
        log.info("handling")

    handle(load_fixture("eventBridgeEvent.json"), Context(aws_request_id="r-1"))
    handle(load_fixture("eventBridgeEvent.json"), Context(aws_request_id="r-2"))
    first, second = [e for e in logs.events() if e["message"] == "handling"]
    assert first["faas"] == {
        "name": "orders-fn",
        "execution": "r-1",
        "coldstart": True,
        "version": "$LATEST",
        "trigger": {"type": "pubsub"},
    }
    assert second["faas"]["coldstart"] is False and second["faas"]["execution"] == "r-2"
    assert first["correlation_id"] == "eventbridge-id"


def test_batch_record_lines_carry_record_id_and_faas(logs: LogCapture) -> None:
    log = logging.getLogger("orders")

    @correlated_handler(record_handler=True)
    def handle(record: Any, context: Any) -> None:
        log.info("record")

    handle(load_fixture("dynamoStreamEvent.json"), Context())
    lines = [e for e in logs.events() if e["message"] == "record"]
    assert [e["correlation_id"] for e in lines] == ["dynamodb-record-1", "dynamodb-record-2"]
    assert [e["labels"]["record_id"] for e in lines] == ["111", "222"]
    assert all(e["faas"]["name"] == "orders-fn" and e["faas"]["trigger"]["type"] == "datasource" for e in lines)


def test_http_responses_carry_the_header() -> None:
    v1 = correlated_handler(lambda e, c: {"statusCode": 201, "body": "x"})(load_fixture("apiGatewayProxyEvent.json"))
    assert v1["headers"]["X-Correlation-ID"] == "apigw-v1-id" and v1["statusCode"] == 201
    v2 = correlated_handler(lambda e, c: "plain string")(load_fixture("apiGatewayProxyV2Event.json"))
    assert v2 == {
        "statusCode": 200,
        "body": "plain string",
        "headers": {"content-type": "application/json", "X-Correlation-ID": "apigw-v2-id"},
    }
    alb = correlated_handler(lambda e, c: {"statusCode": 200, "multiValueHeaders": {"A": ["1"]}})(
        load_fixture("albMultiValueHeadersEvent.json")
    )
    assert alb["multiValueHeaders"] == {"A": ["1"], "X-Correlation-ID": ["alb-multi-id"]} and "headers" not in alb
    own = correlated_handler(lambda e, c: {"statusCode": 200, "headers": {"x-correlation-id": "mine"}})(
        load_fixture("albEvent.json")
    )
    assert own["headers"] == {"x-correlation-id": "mine"}
    direct = correlated_handler(lambda e, c: {"ok": True})(load_fixture("directInvocation.json"))
    assert direct == {"ok": True}  # not an HTTP event: the result is left alone


@pytest.mark.parametrize("hostile", ["abc\r\nx", "a" * 10_000, "caf\u00e9", "", "  ", '{"a":1}', 12345, {"x": 1}])
def test_hostile_ids_in_payloads_are_replaced(hostile: Any, logs: LogCapture) -> None:
    event = load_fixture("apiGatewayProxyV2Event.json")
    event["headers"]["x-correlation-id"] = hostile
    result = correlated_handler(lambda e, c: {"statusCode": 200, "body": _seen(e, c)})(event, Context())
    assert UUID7.fullmatch(result["body"]) and result["headers"]["X-Correlation-ID"] == result["body"]
    if isinstance(hostile, str) and hostile.strip():
        assert hostile not in logs.text
    record_event = load_fixture("sqsEvent.json")
    record_event["Records"][0]["messageAttributes"]["correlation_id"]["stringValue"] = hostile
    (first, _) = list(iter_records(record_event))
    assert first.correlation_id and UUID7.fullmatch(first.correlation_id)


def test_plain_wrapper_form_and_failure_propagates(logs: LogCapture) -> None:
    def boom(event: Any, context: Any) -> None:
        raise RuntimeError("bad")

    wrapped = correlated_handler(boom)
    with pytest.raises(RuntimeError):
        wrapped(load_fixture("directInvocation.json"), Context())
    (line,) = [e for e in logs.events() if e["log"]["level"] == "ERROR"]
    assert line["correlation_id"] == "direct-id" and line["error"]["type"] == "RuntimeError"
    assert corrtrace.get_correlation_id() is None
    with pytest.raises(ValueError, match="use correlated_handler"):
        CorrelatedBatch(load_fixture("directInvocation.json"))


def test_the_lambda_wrapper_imports_no_heavy_stdlib_at_cold_start() -> None:
    """A cold start pays for every module imported: the wrapper (a decorated handler included) must not pull in
    ``dataclasses``/``inspect`` (~20 ms), ``logging``, ``asyncio`` or ``json`` before a line is written."""
    import subprocess
    import sys

    heavy = ("dataclasses", "inspect", "logging", "asyncio", "json", "concurrent.futures")
    code = (
        "import sys\n"
        "from corrtrace.middleware.aws_lambda import correlated_handler\n"
        "handler = correlated_handler(lambda event, context: None)\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""
