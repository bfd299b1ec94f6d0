"""The trigger: one Lambda handler (``corrtrace.txmanager.triggers.handler``) that turns failure reports read
from DynamoDB Streams, SQS (SNS-in-SQS included) or Kinesis into transactions, by a signed call to the manager.

Why a call and not a write into the manager's table: the manager stays the only writer of its state, and the
trigger rule (discovery when nobody registered, duplicates counted, commit/rollback conflicts, the fan-out
started at once) lives in one place, ``app.py``. A manager that is down is exactly what the stream or queue
retry is for. Per record:
- a report the manager took (started or a duplicate: one transaction either way) succeeds;
- a report the manager cannot take now (down, 5xx, 408/425/429, a refused signature) is returned in
  ``batchItemFailures``: on a stream the first failed one per shard, and that shard's later records are not
  processed in this batch (they follow it, in order); on a queue each failed message, its visibility timeout
  backed off by receive count so a long outage does not exhaust the queue's ``maxReceiveCount``;
- a record that is not a report, or one the manager refuses for good (409: the request already committed),
  goes to the on-failure queue with one log line, and the records behind it go on (no jam).
See txmanager/README.md ("The failure channel").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from corrtrace.middleware.aws_lambda import CorrelatedBatch, correlated_handler
from corrtrace.middleware.aws_lambda import events as ev
from corrtrace.txmanager import eventlog
from corrtrace.txmanager.client import TxManagerClient, TxManagerError
from corrtrace.txmanager.failures import FailureRecord, MalformedRecord, aws_client, queue_url, read_record
from corrtrace.txmanager.settings import TxManagerSettings, load_settings

from corrtrace.ids import safe_excerpt
from corrtrace.shapes import section

RETRY_STATUS = frozenset({401, 403, 408, 425, 429})  # 401/403: a wrong secret is fixed by an operator, not lost
CALL_TIMEOUT = 30.0  # seconds for one call to the manager (keep the Lambda timeout above it)
MAX_DEAD_LETTER_BYTES = 200 * 1024  # SQS takes 256 KiB per message
VISIBILITY_BASE, VISIBILITY_MAX = 2, 900  # seconds: 2, 4, 8, ... 900 between receives of a failing message


class Retry(Exception):
    """The manager cannot take the report now; the stream or queue must deliver it again."""


class Refused(Exception):
    """The manager refuses the report for good; it goes to the on-failure queue."""


class FailureTrigger:
    """Reads a batch of failure records and starts their transactions (one instance per process)."""

    def __init__(
        self, settings: TxManagerSettings, *, manager: TxManagerClient | None = None, sqs: Any | None = None
    ) -> None:
        self.settings = settings
        # a call that times out is retried by the stream: a generous timeout avoids piling retries on a busy manager
        self.manager = manager or TxManagerClient(
            settings.resolved_manager_url, settings.resolved_secret(), timeout=CALL_TIMEOUT, retries=0
        )
        self._sqs = sqs
        self._queue_urls: dict[str, str] = {}

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = aws_client(self.settings, "sqs")
        return self._sqs

    # --- one batch ------------------------------------------------------------------------------------------
    def handle(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        if ev.event_source(event) not in ev.BATCH_SOURCES:  # no records to report or retry: say so, once
            eventlog.note(
                None, "the trigger got an event that is no stream or queue batch; nothing to do", level=logging.ERROR
            )
            return {"batchItemFailures": []}
        batch = CorrelatedBatch(event)
        stream = batch.source in (ev.DYNAMODB, ev.KINESIS)
        blocked: set[str] = set()  # shards (streams) or FIFO groups with a failed record in this batch
        for record in batch:
            lane = _lane(record, stream, batch.fifo)
            if lane is not None and lane in blocked:
                if batch.fifo:
                    batch.fail(record)  # SQS FIFO: every later message of the group is reported too
                continue  # a stream resumes from the first failed sequence number: the rest follow it
            try:
                self._one(record)
            except Retry as exc:
                eventlog.note(
                    record.correlation_id,
                    f"failure record {record.identifier} not taken now ({exc}); it will be retried",
                    level=logging.WARNING,
                    record_source=batch.source,
                )
                batch.fail(record)
                if lane is not None:
                    blocked.add(lane)
                if batch.source == ev.SQS and not batch.fifo:
                    self._back_off(record)
        return batch.response()

    def _one(self, record: ev.BatchRecord) -> None:
        try:
            report = read_record(record)
        except MalformedRecord as exc:
            self._dead_letter(record, f"malformed failure record: {exc}")
            return
        if report is None:  # a stream event that is not a new report (a TTL delete)
            return
        try:
            self._call(report)
        except Refused as exc:
            self._dead_letter(record, str(exc))

    def _call(self, report: FailureRecord) -> None:
        call = self.manager.rollback if report.action == "rollback" else self.manager.commit
        try:
            result = call(report.correlation_id, reason=report.reason or None, source=report.source)
        except TxManagerError as exc:
            if exc.status is None or exc.status >= 500 or exc.status in RETRY_STATUS:
                if exc.status in (401, 403):
                    eventlog.note(
                        report.correlation_id, f"the manager refused the trigger's call: {exc}", level=logging.ERROR
                    )
                cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
                raise Retry(f"HTTP {exc.status}" if exc.status else f"manager unreachable: {cause}") from None
            raise Refused(f"the manager refused the {report.action} for good: {exc}") from None
        eventlog.note(
            report.correlation_id,
            f"failure record from {safe_excerpt(report.source, 60)}: {report.action} "
            f"{'started' if result.get('started') else 'already requested'}",
            report_id=report.report_id,
            reason=safe_excerpt(report.reason, 120) or None,
        )

    # --- the on-failure queue and the queue's backoff ---------------------------------------------------------
    def _dead_letter(self, record: ev.BatchRecord, why: str) -> None:
        """Hand the record to the on-failure queue; if even that fails, retry the record (nothing is lost)."""
        raw = json.dumps(dict(record.raw), default=str)
        if len(raw) > MAX_DEAD_LETTER_BYTES:
            raw = json.dumps({"truncated": True, "excerpt": raw[:1000]})
        body = json.dumps(
            {"error": why, "event_source": record.source, "identifier": record.identifier, "record": json.loads(raw)}
        )
        try:
            self.sqs.send_message(QueueUrl=self._queue(self.settings.failure_dlq), MessageBody=body)
        except Exception as exc:
            raise Retry(f"the on-failure queue is not reachable ({type(exc).__name__})") from None
        eventlog.note(
            record.correlation_id,
            f"failure record {safe_excerpt(record.identifier, 80)} sent to the on-failure queue "
            f"{self.settings.failure_dlq}: {why}",
            level=logging.ERROR,
            record_source=record.source,
        )

    def _back_off(self, record: ev.BatchRecord) -> None:
        """Make a failing message wait longer at each receive (2, 4, 8 ... s), so an outage of the manager costs
        few receives: a short visibility timeout alone would move it to the dead-letter queue in minutes."""
        attributes = section(record.raw, "attributes")
        try:
            received = max(1, int(attributes.get("ApproximateReceiveCount", 1)))
            arn = str(record.raw.get("eventSourceARN", ""))
            _, _, _, _, account, name = arn.split(":", 5)
            url = (
                self._queue_urls.get(arn)
                or self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            )
            self._queue_urls[arn] = url
            self.sqs.change_message_visibility(
                QueueUrl=url,
                ReceiptHandle=record.raw["receiptHandle"],
                VisibilityTimeout=min(VISIBILITY_MAX, VISIBILITY_BASE**received),
            )
        except Exception as exc:  # the message still comes back after the queue's own visibility timeout
            eventlog.note(
                record.correlation_id,
                f"could not back off message {record.identifier}: {type(exc).__name__}",
                level=logging.WARNING,
            )

    def _queue(self, name: str) -> str:
        if name not in self._queue_urls:
            self._queue_urls[name] = queue_url(self.sqs, name)
        return self._queue_urls[name]


def _lane(record: ev.BatchRecord, stream: bool, fifo: bool) -> str | None:
    """What must stay in order: a Kinesis shard (from the event ID), a DynamoDB batch (one shard), a FIFO group."""
    if stream:
        event_id = str(record.raw.get("eventID", ""))
        return event_id.split(":", 1)[0] if record.source == ev.KINESIS and ":" in event_id else ""
    if fifo:
        return str(section(record.raw, "attributes").get("MessageGroupId", ""))
    return None


_trigger: FailureTrigger | None = None


def _handle(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    global _trigger
    if _trigger is None:  # built once per Lambda container, from CORRTRACE_TXMANAGER_* (and the secret)
        _trigger = FailureTrigger(load_settings())
    return _trigger.handle(event)


handler = correlated_handler(_handle)
