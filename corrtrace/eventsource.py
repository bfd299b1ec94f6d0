"""Local event-source mappings that behave like Lambda's: DynamoDB Streams and Kinesis (``StreamPoller``,
``KinesisPoller``) and SQS (``QueuePoller``), for running Lambda handlers without AWS (moto cannot run them).
Used by the demo's shipping service and by ``corrtrace txmanager follow-failures``.

For a stream, the poller does what Lambda's does: read each shard
in order and hand the function batches of up to ``batch_size`` records. On failure it retries the batch: the
stream does not move past a failing record (the talk's "jam"). With ``report_batch_item_failures`` the
function returns ``{"batchItemFailures": [{"itemIdentifier": <sequence number>}]}`` and only the records from
the first failed one on are retried. When ``max_retries`` are used up the batch is bisected until the bad
record is alone, and that record is skipped and handed to the on-failure destination. ``max_retries=-1`` is
Lambda's "retry until the record expires": the batch is retried (with a delay growing to ``max_retry_delay``)
until it succeeds, which is what a consumer that must not lose a record (the failure trigger) wants.

For a queue, as Lambda's SQS mapping: receive up to ``batch_size`` messages, invoke, delete the messages that
succeeded (all but those in ``batchItemFailures``; none when the function raised). A failed message comes back
after its visibility timeout, and the queue's redrive policy moves it to its dead-letter queue.

``parallelization_factor`` is Lambda's ParallelizationFactor: up to that many batches of one shard run at
once, records with the same partition key always in the same lane and in order, so a jam holds up only
the poison record's lane.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corrtrace.context import bind_correlation_id

log = logging.getLogger("corrtrace.eventsource")
SHARD_REFRESH_SECONDS = 5.0
Handler = Callable[[dict[str, Any], Any], Any]
Record = dict[str, Any]


@dataclass(frozen=True)
class PollerSettings:
    batch_size: int = 10
    max_retries: int = 2  # -1: retry until it succeeds (Lambda's -1: until the record expires)
    retry_delay: float = 0.05
    max_retry_delay: float = 5.0
    poll_interval: float = 0.1
    bisect_on_error: bool = True
    report_batch_item_failures: bool = True
    parallelization_factor: int = 1
    function_name: str = "function"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"batch_size must be 1..10000 (Lambda's range), got {self.batch_size}")
        if not 1 <= self.parallelization_factor <= 10:
            raise ValueError(
                f"parallelization_factor must be 1..10 (Lambda's range), got {self.parallelization_factor}"
            )
        if self.max_retries < -1:
            raise ValueError(f"max_retries must be >= 0, or -1 for no limit, got {self.max_retries}")


@dataclass
class PollerStats:
    invocations: int = 0
    records: int = 0
    retries: int = 0
    bisects: int = 0
    partial_failures: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    longest_jam_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "records": self.records,
            "retries": self.retries,
            "bisects": self.bisects,
            "partial_failures": self.partial_failures,
            "skipped": list(self.skipped),
            "longest_jam_seconds": round(self.longest_jam_seconds, 3),
        }


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and middleware read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline: float = field(default_factory=lambda: time.time() + 60)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


def sequence_of(record: Record) -> str:
    """A stream record's sequence number, what ``batchItemFailures`` quotes for it (DynamoDB or Kinesis)."""
    if "kinesis" in record:
        return str(record["kinesis"]["sequenceNumber"])
    return str(record["dynamodb"]["SequenceNumber"])


def record_correlation_id(record: Record) -> str | None:
    """The ``correlation_id`` a stream record carries (item attribute, or a field of Kinesis JSON data)."""
    if "kinesis" in record:
        try:
            value = json.loads(base64.b64decode(record["kinesis"].get("data") or b"")).get("correlation_id")
        except (ValueError, TypeError, AttributeError):
            return None
        return value if isinstance(value, str) and value else None
    image = record.get("dynamodb", {}).get("NewImage") or record.get("dynamodb", {}).get("OldImage") or {}
    value = image.get("correlation_id", {}).get("S")
    return str(value) if value else None


def lane_of(record: Record, lanes: int) -> int:
    """Records with the same partition key go to the same lane (Lambda keeps their order)."""
    if "kinesis" in record:
        key = str(record["kinesis"].get("partitionKey", "")).encode()
    else:
        key = json.dumps(record.get("dynamodb", {}).get("Keys", {}), sort_keys=True).encode()
    return zlib.crc32(key) % lanes


class StreamPoller:
    """Poll every shard of one stream and feed ``handler`` like Lambda's event-source mapping would."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        settings: PollerSettings | None = None,
        on_failure: Callable[[list[Record], str], None] | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.settings = settings or PollerSettings()
        self.on_failure = on_failure
        self.region = region
        self.stats = PollerStats()
        self._stats_lock = threading.Lock()
        self._iterators: dict[str, str | None] = {}
        self._shards_checked = 0.0
        self._lanes: list[queue.Queue[Record]] = [queue.Queue() for _ in range(self.settings.parallelization_factor)]
        self._busy = [False] * self.settings.parallelization_factor
        self._stop = threading.Event()

    # --- reading the stream ---------------------------------------------------------------------------
    def _refresh_shards(self) -> None:
        """Pick up new shards (DescribeStream is rate-limited in AWS: at most every few seconds)."""
        if self._iterators and time.monotonic() - self._shards_checked < SHARD_REFRESH_SECONDS:
            return
        self._shards_checked = time.monotonic()
        for shard_id in self._shard_ids():
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._iterator(shard_id)

    def _shard_ids(self) -> list[str]:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        return [str(shard["ShardId"]) for shard in shards]

    def _iterator(self, shard_id: str) -> str:
        return str(
            self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )

    def read(self) -> list[Record]:
        """The new records of every shard, in shard order, as Lambda's event shows them."""
        self._refresh_shards()
        found: list[Record] = []
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = page.get("NextShardIterator")
            found += [self._as_lambda_record(r, shard_id) for r in page.get("Records", [])]
        return found

    def poll_once(self) -> int:
        """Read what is new and process it in this thread, lane by lane; returns the number of records."""
        records = self.read()
        lanes: list[list[Record]] = [[] for _ in self._lanes]
        for record in records:
            lanes[lane_of(record, len(lanes))].append(record)
        for lane in lanes:
            for start in range(0, len(lane), self.settings.batch_size):
                self._deliver(lane[start : start + self.settings.batch_size])
        return len(records)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``; each lane's batches run in their own worker thread."""
        self._stop = stop
        workers = [
            threading.Thread(target=self._work, args=(i, stop), daemon=True, name=f"stream-lane-{i}")
            for i in range(len(self._lanes))
        ]
        for worker in workers:
            worker.start()
        while not stop.is_set():
            try:
                records = self.read()
            except Exception:  # the poller must outlive a bad moment of the stream API
                log.exception("stream poll failed; polling again", extra={"event.action": "stream-poll"})
                records = []
            for record in records:
                self._lanes[lane_of(record, len(self._lanes))].put(record)
            if not records:
                stop.wait(self.settings.poll_interval)
        for worker in workers:
            worker.join(timeout=5)

    def pending(self) -> int:
        """Records read but not yet processed (or being processed)."""
        return sum(q.qsize() for q in self._lanes) + sum(self._busy)

    def _work(self, lane: int, stop: threading.Event) -> None:
        source = self._lanes[lane]
        while not stop.is_set():
            try:
                first = source.get(timeout=0.1)
            except queue.Empty:
                continue
            self._busy[lane] = True
            batch = [first]
            while len(batch) < self.settings.batch_size:
                try:
                    batch.append(source.get_nowait())
                except queue.Empty:
                    break
            try:
                self._deliver(batch)
            except Exception:
                log.exception(
                    "stream lane %d failed on a batch; its records are lost",
                    lane,
                    extra={"event.action": "stream-lane"},
                )
            finally:
                self._busy[lane] = False

    def _as_lambda_record(self, record: Record, shard_id: str) -> Record:
        out = dict(record)
        out.setdefault("eventSourceARN", self.stream_arn)
        out.setdefault("awsRegion", self.region)
        dynamodb = dict(out.get("dynamodb", {}))
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):  # boto3 parses it; Lambda's event carries epoch seconds
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        out["dynamodb"] = dynamodb
        return out

    # --- Lambda's retry semantics ---------------------------------------------------------------------
    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def _invoke(self, batch: list[Record]) -> int | None:
        """Run the function once; None when every record succeeded, else the index of the first failure."""
        self._count(invocations=1)
        event = {"Records": batch}
        try:
            result = self.handler(event, LambdaContext(self.settings.function_name))
        except Exception as exc:
            with bind_correlation_id(record_correlation_id(batch[0])):
                log.warning(
                    "function error on a batch of %d: %s: %s",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    extra={"event.action": "stream-batch-failed", "labels.batch_size": len(batch)},
                )
            return 0
        if not self.settings.report_batch_item_failures or not isinstance(result, dict):
            return None
        failed = {str(f.get("itemIdentifier")) for f in result.get("batchItemFailures") or []}
        if not failed:
            return None
        self._count(partial_failures=1)
        seqs = [sequence_of(r) for r in batch]
        known = [i for i, s in enumerate(seqs) if s in failed]
        # an unknown or empty identifier means the whole batch failed, as Lambda treats it
        return min(known) if known and len(known) == len(failed) else 0

    def _deliver(self, batch: list[Record], attempts: int = 0) -> None:
        """Invoke until the batch succeeds; a half of a bisected batch starts with its retries used up."""
        stalled_since: float | None = None
        while batch:
            first_failed = self._invoke(batch)
            if first_failed is None:
                self._count(records=len(batch))
                break
            self._count(records=first_failed)
            batch = batch[first_failed:]
            stalled_since = stalled_since or time.monotonic()
            attempts += 1
            if attempts <= self.settings.max_retries or self.settings.max_retries == -1:
                self._count(retries=1)
                if self._stop.wait(min(self.settings.max_retry_delay, self.settings.retry_delay * attempts)):
                    break  # stopping: the records stay unprocessed (a new poller reads them again)
                continue
            if len(batch) > 1 and self.settings.bisect_on_error:
                self._count(bisects=1)
                mid = len(batch) // 2
                self._deliver(batch[:mid], self.settings.max_retries)
                self._deliver(batch[mid:], self.settings.max_retries)
                break
            self._skip(batch, attempts)
            break
        if stalled_since is not None:
            with self._stats_lock:
                jam = time.monotonic() - stalled_since
                self.stats.longest_jam_seconds = max(self.stats.longest_jam_seconds, jam)

    def _skip(self, batch: list[Record], attempts: int) -> None:
        """Retries are used up: move past the records (the jam clears) and hand them to the failure sink."""
        reason = f"gave up after {attempts} attempts"
        for record in batch:
            cid = record_correlation_id(record)
            seq = sequence_of(record)
            with self._stats_lock:
                self.stats.skipped.append({"sequence_number": seq, "correlation_id": cid})
            with bind_correlation_id(cid):
                log.error(
                    "stream record %s skipped: %s",
                    seq,
                    reason,
                    extra={
                        "event.action": "stream-record-skipped",
                        "labels.sequence_number": seq,
                        "labels.attempts": attempts,
                    },
                )
        if self.on_failure is not None:
            self.on_failure(batch, reason)


class KinesisPoller(StreamPoller):
    """The same mapping for a Kinesis stream (``streams`` is a kinesis client, ``stream_arn`` the stream's ARN)."""

    @property
    def _name(self) -> str:
        return self.stream_arn.rsplit("/", 1)[-1]  # arn:aws:kinesis:<region>:<account>:stream/<name>

    def _shard_ids(self) -> list[str]:
        shards = self.streams.list_shards(StreamName=self._name)["Shards"]
        return [str(shard["ShardId"]) for shard in shards]

    def _iterator(self, shard_id: str) -> str:
        return str(
            self.streams.get_shard_iterator(StreamName=self._name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
                "ShardIterator"
            ]
        )

    def _as_lambda_record(self, record: Record, shard_id: str) -> Record:
        arrived = record.get("ApproximateArrivalTimestamp")
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": record["SequenceNumber"],
                "data": base64.b64encode(record["Data"]).decode(),
                "approximateArrivalTimestamp": arrived.timestamp() if isinstance(arrived, datetime) else arrived,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{record['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "eventSourceARN": self.stream_arn,
            "awsRegion": self.region,
        }


class QueuePoller:
    """Lambda's SQS event-source mapping: receive, invoke, delete what succeeded; failures come back later."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        settings: PollerSettings | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.settings = settings or PollerSettings()
        self.region = region
        self.stats = PollerStats()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.arn = str(attributes["QueueArn"])

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and hand it to the function; returns how many messages it received."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, self.settings.batch_size),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [self._as_lambda_record(m) for m in messages]
        self.stats.invocations += 1
        try:
            result = self.handler({"Records": records}, LambdaContext(self.settings.function_name))
        except Exception as exc:  # nothing is deleted: every message comes back after its visibility timeout
            log.warning(
                "function error on a batch of %d messages: %s",
                len(records),
                type(exc).__name__,
                extra={"event.action": "queue-batch-failed"},
            )
            return len(records)
        failed: set[str] = set()
        if self.settings.report_batch_item_failures and isinstance(result, dict):
            failed = {str(f.get("itemIdentifier")) for f in result.get("batchItemFailures") or []}
        done = [r for r in records if r["messageId"] not in failed]
        if failed:
            self.stats.partial_failures += 1
        self.stats.records += len(done)
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done[start : start + 10])
                ],
            )
        return len(records)

    def pending(self) -> int:
        """Messages received but not yet handled: none between polls (the queue holds the rest)."""
        return 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                received = self.poll_once()
            except Exception:  # the poller must outlive a bad moment of the queue API
                log.exception("queue poll failed; polling again", extra={"event.action": "queue-poll"})
                received = 0
            if not received:
                stop.wait(self.settings.poll_interval)

    def _as_lambda_record(self, message: Record) -> Record:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        }
