"""The durable failure channel: a service writes a failure report down, the trigger turns it into a rollback.

``report_failure(correlation_id, reason, source=...)`` stores one record in a DynamoDB table with a stream
(the default, as in the talk), an SQS queue, an SNS topic (delivered to a queue) or a Kinesis stream, and
returns once the record is stored: whether the manager is up does not matter. ``triggers.handler`` reads the
records back (``read_record``) and starts the transactions. Shape and channels: txmanager/README.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from corrtrace.txmanager.settings import TxManagerSettings

from corrtrace.context import get_correlation_id
from corrtrace.errors import InvalidInput
from corrtrace.ids import is_valid, new_uuid7, safe_excerpt
from corrtrace.logging import current_trace_context

ACTIONS = ("rollback", "commit")
MAX_REASON, MAX_SOURCE = 1000, 256
MAX_RECORD_BYTES = 64 * 1024  # a report is a few hundred bytes; anything this large is not one
RETENTION_SECONDS = 7 * 24 * 3600  # the table's TTL: reports are kept a week, then DynamoDB deletes them
FIELDS = ("correlation_id", "action", "reason", "source", "reported_at", "report_id", "trace_id", "span_id")


class MalformedRecord(InvalidInput):
    """A record on the channel is not a failure report; the message says what is wrong (never the raw value)."""


@dataclass(frozen=True)
class FailureRecord:
    """One failure report: what to do (``action``) for which request, why, who said so and when."""

    correlation_id: str
    action: str
    reason: str
    source: str
    reported_at: str  # ISO 8601, UTC, milliseconds
    report_id: str  # unique per report: the table's sort key and the queue's deduplication key
    trace_id: str | None = None
    span_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_mapping(cls, data: Any) -> FailureRecord:
        """Validate a decoded record; MalformedRecord names the first field that is wrong."""
        if not isinstance(data, Mapping):
            raise MalformedRecord("not a JSON object")
        values: dict[str, str | None] = {}
        for name in FIELDS:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise MalformedRecord(f"{name}: expected a string")
            values[name] = value
        cid = values["correlation_id"]
        if not cid or not is_valid(cid):
            raise MalformedRecord(f"correlation_id: missing or not a valid id ({safe_excerpt(cid or '')!r})")
        if values["action"] not in ACTIONS:
            raise MalformedRecord(f"action: expected rollback or commit, got {safe_excerpt(values['action'] or '')!r}")
        if not values["source"] or len(values["source"] or "") > MAX_SOURCE:
            raise MalformedRecord(f"source: expected 1..{MAX_SOURCE} characters")
        if len(values["reason"] or "") > MAX_REASON:
            raise MalformedRecord(f"reason: over {MAX_REASON} characters")
        return cls(
            correlation_id=cid,
            action=str(values["action"]),
            reason=values["reason"] or "",
            source=str(values["source"]),
            reported_at=values["reported_at"] or "",
            report_id=values["report_id"] or "",
            trace_id=values["trace_id"],
            span_id=values["span_id"],
        )


def new_record(correlation_id: str | None, reason: str, action: str, source: str) -> FailureRecord:
    """A report for ``correlation_id`` (default: the one bound to this request), with the trace if tracing is on."""
    cid = correlation_id or get_correlation_id()
    if not cid:
        raise ValueError("report_failure needs a correlation id (none given and none bound to this request)")
    trace = current_trace_context()
    return FailureRecord.from_mapping(
        {
            "correlation_id": cid,
            "action": action,
            "reason": reason[:MAX_REASON],
            "source": source,
            "reported_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "report_id": new_uuid7(),
            "trace_id": trace[0] if trace else None,
            "span_id": trace[1] if trace else None,
        }
    )


# --- AWS --------------------------------------------------------------------------------------------------------
def aws_client(settings: TxManagerSettings, service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name=settings.region,
        endpoint_url=settings.resolved_failure_endpoint,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10),
    )


def queue_url(sqs: Any, name_or_url: str) -> str:
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    return str(sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"])


class FailureChannel:
    """Writes failure reports to the configured channel (thread-safe: boto3 clients are)."""

    def __init__(self, settings: TxManagerSettings, source: str, *, client: Any | None = None) -> None:
        if not source or len(source) > MAX_SOURCE:
            raise ValueError(f"source: the reporting service's name, 1..{MAX_SOURCE} characters")
        self.settings = settings
        self.source = source
        self.kind = settings.failure_channel
        service = {"dynamodb": "dynamodb", "sqs": "sqs", "sns": "sns", "kinesis": "kinesis"}[self.kind]
        self.client = client or aws_client(settings, service)
        self._target: str | None = None

    def report(
        self, correlation_id: str | None, reason: str, action: str = "rollback", *, source: str | None = None
    ) -> FailureRecord:
        """Store one report and return it; raises (botocore's errors) only when it could not be stored."""
        record = new_record(correlation_id, reason, action, source or self.source)
        body = json.dumps(record.as_dict(), separators=(",", ":"))
        if self.kind == "dynamodb":
            item = {k: {"S": v} for k, v in record.as_dict().items()}
            item["expires"] = {"N": str(int(time.time()) + RETENTION_SECONDS)}
            from corrtrace.txmanager.store import if_condition_holds  # boto3's import waits for a first report

            # conditional: an SDK retry of an applied put must not write a second stream record
            if_condition_holds(
                lambda: self.client.put_item(
                    TableName=self.settings.failure_target,
                    Item=item,
                    ConditionExpression="attribute_not_exists(report_id)",
                )
            )
        elif self.kind == "sqs":
            self.client.send_message(
                QueueUrl=self._queue(),
                MessageBody=body,
                MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": record.correlation_id}},
                **self._fifo(record),
            )
        elif self.kind == "sns":
            self.client.publish(
                TopicArn=self._topic(),
                Message=body,
                MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": record.correlation_id}},
            )
        else:
            self.client.put_record(
                StreamName=self.settings.failure_target, Data=body.encode(), PartitionKey=record.correlation_id
            )
        return record

    def _queue(self) -> str:
        if self._target is None:
            self._target = queue_url(self.client, self.settings.failure_target)
        return self._target

    def _fifo(self, record: FailureRecord) -> dict[str, str]:
        if not self.settings.failure_target.endswith(".fifo"):
            return {}
        return {"MessageGroupId": record.correlation_id, "MessageDeduplicationId": record.report_id}

    def _topic(self) -> str:
        if self._target is None:
            target = self.settings.failure_target
            # create_topic is idempotent and answers the ARN of an existing topic
            self._target = target if target.startswith("arn:") else self.client.create_topic(Name=target)["TopicArn"]
        return self._target


@lru_cache(maxsize=8)
def _default_channel(source: str) -> FailureChannel:
    from corrtrace.txmanager.settings import load_settings

    return FailureChannel(load_settings(), source)


def report_failure(
    correlation_id: str | None,
    reason: str,
    action: str = "rollback",
    *,
    source: str,
    settings: TxManagerSettings | None = None,
) -> FailureRecord:
    """Write a failure report for ``correlation_id`` down and return it once stored, whether or not the manager
    is up (botocore's errors when it could not be stored: then nothing was reported).

    Settings come from ``corrtrace.yaml`` / ``CORRTRACE_TXMANAGER_*`` unless given; the channel (and its AWS
    client) is built once per process and reused.
    """
    if settings is not None:
        return FailureChannel(settings, source).report(correlation_id, reason, action)
    return _default_channel(source).report(correlation_id, reason, action)


# --- creating the channel (``corrtrace txmanager init``) --------------------------------------------------------
MAX_RECEIVE_COUNT = 20  # receives before SQS moves a message to the on-failure queue (with backoff: hours)


def subscription_queue(settings: TxManagerSettings) -> str:
    """The queue an SNS channel delivers to (the one the trigger reads)."""
    return f"{settings.failure_target}-queue"


def create_resources(settings: TxManagerSettings, client: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Create the channel and its on-failure queue (idempotent); what exists afterwards, by role.

    ``client(service)`` makes the boto3 clients (default: ``aws_client`` from the settings).
    """
    make = client or (lambda service: aws_client(settings, service))
    sqs = make("sqs")
    fifo = settings.failure_target.endswith(".fifo")
    dlq_name = settings.failure_dlq + (".fifo" if fifo and not settings.failure_dlq.endswith(".fifo") else "")
    dlq_attrs = {"FifoQueue": "true"} if fifo else {}
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=dlq_attrs)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    made: dict[str, Any] = {"channel": settings.failure_channel, "on_failure_queue": dlq_url}
    if settings.failure_channel == "dynamodb":
        made["table"], made["created"] = settings.failure_target, _create_table(settings, make("dynamodb"))
        made["stream_arn"] = stream_arn(settings, make("dynamodb"))
    elif settings.failure_channel == "kinesis":
        made["stream"], made["created"] = settings.failure_target, _create_kinesis(settings, make("kinesis"))
    else:
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
        name = settings.failure_target if settings.failure_channel == "sqs" else subscription_queue(settings)
        attrs = {"RedrivePolicy": redrive, **({"FifoQueue": "true"} if fifo else {})}
        made["queue"] = url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        if settings.failure_channel == "sns":
            sns = make("sns")
            made["topic"] = topic = sns.create_topic(Name=settings.failure_target)["TopicArn"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)  # not raw: the trigger reads the envelope
    return made


def _create_table(settings: TxManagerSettings, ddb: Any) -> bool:
    try:
        ddb.create_table(
            TableName=settings.failure_target,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "correlation_id", "AttributeType": "S"},
                {"AttributeName": "report_id", "AttributeType": "S"},
            ],
            # one partition per request: its reports share a stream shard, so they are read in order
            KeySchema=[
                {"AttributeName": "correlation_id", "KeyType": "HASH"},
                {"AttributeName": "report_id", "KeyType": "RANGE"},
            ],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
    except Exception as exc:
        from corrtrace.txmanager.store import error_code

        if error_code(exc) == "ResourceInUseException":
            return False
        raise
    ddb.get_waiter("table_exists").wait(TableName=settings.failure_target, WaiterConfig={"Delay": 1})
    ddb.update_time_to_live(
        TableName=settings.failure_target, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    return True


def stream_arn(settings: TxManagerSettings, ddb: Any | None = None) -> str:
    table = (ddb or aws_client(settings, "dynamodb")).describe_table(TableName=settings.failure_target)["Table"]
    arn = table.get("LatestStreamArn")
    if not arn:
        raise ValueError(f"table {settings.failure_target} has no stream; create it with `corrtrace txmanager init`")
    return str(arn)


def _create_kinesis(settings: TxManagerSettings, kinesis: Any) -> bool:
    try:
        kinesis.create_stream(StreamName=settings.failure_target, ShardCount=1)
    except Exception as exc:
        from corrtrace.txmanager.store import error_code

        if error_code(exc) == "ResourceInUseException":
            return False
        raise
    kinesis.get_waiter("stream_exists").wait(StreamName=settings.failure_target, WaiterConfig={"Delay": 1})
    return True


# --- reading a Lambda record back ---------------------------------------------------------------------------
def read_record(record: Any) -> FailureRecord | None:
    """The failure report a Lambda record view (``corrtrace.middleware.aws_lambda.events``) carries; None for a
    stream event that is not a new report (a TTL delete, a modify); MalformedRecord when it is not a report."""
    from corrtrace.middleware.aws_lambda import events as ev

    if isinstance(record, ev.DynamoDBRecord):
        if record.event_name != "INSERT":
            return None
        image = record.new_image
        if not image:
            raise MalformedRecord("no NewImage (the stream must be NEW_IMAGE or NEW_AND_OLD_IMAGES)")
        data: dict[str, Any] = {}
        for name in FIELDS:
            attribute = image.get(name)
            if attribute is not None:
                if not isinstance(attribute, Mapping) or "S" not in attribute:
                    raise MalformedRecord(f"{name}: expected a string attribute")
                data[name] = attribute["S"]
        return FailureRecord.from_mapping(data)
    if isinstance(record, ev.SQSRecord):
        body = _json(record.body)
        if isinstance(body, Mapping) and body.get("Type") == "Notification" and "TopicArn" in body:
            body = _json(body.get("Message"))  # SNS to SQS without raw delivery: the SNS envelope
        return FailureRecord.from_mapping(body)
    if isinstance(record, ev.SNSRecord):
        return FailureRecord.from_mapping(_json(record.message))
    if isinstance(record, ev.KinesisRecord):
        try:
            data_bytes = record.data
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            raise MalformedRecord("kinesis data: not base64") from None
        return FailureRecord.from_mapping(_json(data_bytes))
    raise MalformedRecord(f"unsupported event source {safe_excerpt(str(getattr(record, 'source', '')))!r}")


def _json(text: Any) -> Any:
    if not isinstance(text, str | bytes) or not text:
        raise MalformedRecord("empty body")
    if len(text) > MAX_RECORD_BYTES:
        raise MalformedRecord(f"body over {MAX_RECORD_BYTES} bytes")
    try:
        return json.loads(text)
    except ValueError:
        raise MalformedRecord("body is not JSON") from None
