"""Typed read-only views over the Lambda event records corrtrace handles (Powertools data-class style).

Each view keeps the raw dict (``.raw``) and exposes the few fields a handler and the extractors need, with
``identifier`` being what ``batchItemFailures`` must quote for that source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from corrtrace.shapes import section

SQS, SNS, KINESIS, DYNAMODB = "aws:sqs", "aws:sns", "aws:kinesis", "aws:dynamodb"
HTTP, EVENTBRIDGE, DIRECT = "http", "eventbridge", "direct"
BATCH_SOURCES = frozenset({SQS, SNS, KINESIS, DYNAMODB})


class BatchRecord:
    """A batch record: its raw dict, the ID it is handled under (set by the batch iterator), its identifier.

    Indexable like the raw event, as Powertools' data classes are: ``record["body"]``, ``record.get("x")``,
    ``"body" in record``, ``record.raw_event`` (the same dict as ``raw``).
    """

    __slots__ = ("correlation_id", "raw")
    source = ""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.correlation_id: str | None = None

    @property
    def raw_event(self) -> Mapping[str, Any]:
        return self.raw

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def identifier(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identifier!r}, correlation_id={self.correlation_id!r})"


class SQSRecord(BatchRecord):
    __slots__ = ()
    source = SQS

    @property
    def message_id(self) -> str:
        return str(self.raw.get("messageId", ""))

    identifier = message_id

    @property
    def body(self) -> str:
        return str(self.raw.get("body") or "")

    @property
    def message_attributes(self) -> Mapping[str, Any]:
        return section(self.raw, "messageAttributes")

    @property
    def queue_arn(self) -> str:
        return str(self.raw.get("eventSourceARN", ""))

    def json_body(self) -> Any:
        import json

        return json.loads(self.body)


class SNSRecord(BatchRecord):
    __slots__ = ()
    source = SNS

    @property
    def sns(self) -> Mapping[str, Any]:
        return section(self.raw, "Sns")

    @property
    def message_id(self) -> str:
        return str(self.sns.get("MessageId", ""))

    identifier = message_id

    @property
    def message(self) -> str:
        return str(self.sns.get("Message") or "")

    @property
    def message_attributes(self) -> Mapping[str, Any]:
        return section(self.sns, "MessageAttributes")

    @property
    def topic_arn(self) -> str:
        return str(self.sns.get("TopicArn", ""))


class KinesisRecord(BatchRecord):
    __slots__ = ()
    source = KINESIS

    @property
    def sequence_number(self) -> str:
        return str(section(self.raw, "kinesis").get("sequenceNumber", ""))

    identifier = sequence_number

    @property
    def partition_key(self) -> str:
        return str(section(self.raw, "kinesis").get("partitionKey", ""))

    @property
    def data(self) -> bytes:
        import base64

        return base64.b64decode(section(self.raw, "kinesis").get("data") or b"")

    def json_data(self) -> Any:
        import json

        return json.loads(self.data)


class DynamoDBRecord(BatchRecord):
    __slots__ = ()
    source = DYNAMODB

    @property
    def dynamodb(self) -> Mapping[str, Any]:
        return section(self.raw, "dynamodb")

    @property
    def sequence_number(self) -> str:
        return str(self.dynamodb.get("SequenceNumber", ""))

    identifier = sequence_number

    @property
    def event_name(self) -> str:
        return str(self.raw.get("eventName", ""))

    @property
    def keys(self) -> Mapping[str, Any]:
        return section(self.dynamodb, "Keys")

    @property
    def new_image(self) -> Mapping[str, Any]:
        return section(self.dynamodb, "NewImage")

    @property
    def old_image(self) -> Mapping[str, Any]:
        return section(self.dynamodb, "OldImage")


RECORD_TYPES: dict[str, type[BatchRecord]] = {
    SQS: SQSRecord,
    SNS: SNSRecord,
    KINESIS: KinesisRecord,
    DYNAMODB: DynamoDBRecord,
}


def event_source(event: Any) -> str:
    """Which kind of event a handler got: a batch source (``aws:sqs``...), ``http``, ``eventbridge`` or ``direct``."""
    if not isinstance(event, Mapping):
        return DIRECT
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        first = records[0]
        source = first.get("eventSource") or first.get("EventSource")
        if isinstance(source, str) and source in BATCH_SOURCES:
            return str(source)
    context = event.get("requestContext")
    if isinstance(context, Mapping) and (
        "httpMethod" in event or "routeKey" in event or "elb" in context or "http" in context
    ):
        return HTTP
    if "detail-type" in event and "detail" in event:
        return EVENTBRIDGE
    return DIRECT


def http_kind(event: Mapping[str, Any]) -> str:
    """``alb``, ``v1`` (REST API) or ``v2`` (HTTP API and function URLs)."""
    context = event.get("requestContext") or {}
    if "elb" in context:
        return "alb"
    return "v2" if event.get("version") == "2.0" else "v1"
