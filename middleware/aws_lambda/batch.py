"""Per-record correlation for batch events (SQS, SNS, Kinesis, DynamoDB Streams) and partial batch failures.

Powertools has no per-record ID (RFC #518): here each record is handled under the ID it carries, and a record
that fails is reported in ``batchItemFailures`` so one poison record does not jam the queue or the shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from corrtrace.context import get_log_fields, reset_correlation_id, reset_log_fields, set_correlation_id, set_log_fields
from corrtrace.ids import Accepted, IdReader

from .._core import guarded_reader, lambda_logger, otel_helper
from ..settings import DEFAULT_SETTINGS, CorrelationSettings
from . import events as ev
from . import powertools
from .extractors import RECORD_EXTRACTORS, trace_carrier

R = TypeVar("R")
_readers: dict[int, IdReader] = {}


def reader_for(settings: CorrelationSettings) -> IdReader:
    reader = _readers.get(id(settings.policy))
    if reader is None or reader.policy is not settings.policy:
        reader = _readers[id(settings.policy)] = guarded_reader(settings.policy)
    return reader


def record_id(source: str, raw: Mapping[str, Any], settings: CorrelationSettings) -> Accepted:
    """The ID of one record: its carried ID when valid, else a fresh one."""
    extractor = RECORD_EXTRACTORS.get(source)
    try:
        candidate = extractor(raw, settings) if extractor is not None else None
    except Exception:  # a malformed record must not stop the batch: it just gets a fresh ID
        candidate = None
    return reader_for(settings).read(candidate)


class CorrelatedBatch:
    """Iterate a batch event with each record's ID bound while the loop body runs; collect failures.

    ``for record in batch: ...`` (``batch.fail(record)`` on error), then ``return batch.response()``.
    """

    def __init__(self, event: Mapping[str, Any], settings: CorrelationSettings = DEFAULT_SETTINGS) -> None:
        self.source = ev.event_source(event)
        if self.source not in ev.BATCH_SOURCES:
            raise ValueError(
                f"CorrelatedBatch needs an SQS, SNS, Kinesis or DynamoDB Streams event, got a {self.source!r} event; "
                "use correlated_handler for single events"
            )
        self.settings = settings
        self.records = [r for r in event["Records"] if isinstance(r, Mapping)]
        self.failures: list[dict[str, str]] = []
        self._tracer: Any = otel_helper("RecordTracer", settings) if settings.tracing else None
        arn = str(self.records[0].get("eventSourceARN", "")) if self.records else ""
        self.fifo = self.source == ev.SQS and arn.endswith(".fifo")

    def __iter__(self) -> Iterator[ev.BatchRecord]:
        view_type = ev.RECORD_TYPES[self.source]
        for raw in self.records:
            view = view_type(raw)
            cid, _status, excerpt = record_id(self.source, raw, self.settings)
            view.correlation_id = cid
            if excerpt is not None:
                lambda_logger().warning(
                    "rejected a correlation id in a %s record; using a new one",
                    self.source,
                    extra={"correlation_id": cid, "labels.rejected_correlation_id": excerpt},
                )
            token = set_correlation_id(cid)
            fields_token = set_log_fields(_record_fields(view))
            restore_powertools = powertools.bind(cid)
            failures_before = len(self.failures)
            tracer = self._tracer
            span = tracer.start(self.source, view.identifier, cid, *trace_carrier(self.source, raw)) if tracer else None
            try:
                yield view
            finally:
                if span is not None:  # the record's CONSUMER span, continuing the trace its message carried
                    tracer.end(span, failed=len(self.failures) > failures_before)
                restore_powertools()
                reset_log_fields(fields_token)
                reset_correlation_id(token)

    def fail(self, record: ev.BatchRecord) -> None:
        """Report ``record`` (and, for a FIFO queue, the caller must stop: see ``process_batch``)."""
        self.failures.append({"itemIdentifier": record.identifier})

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": list(self.failures)}


def _record_fields(view: ev.BatchRecord) -> dict[str, Any]:
    current = get_log_fields()
    fields = dict(current) if current else {}
    labels = dict(fields.get("labels") or {})
    labels["record_id"] = view.identifier
    fields["labels"] = labels
    return fields


def iter_records(
    event: Mapping[str, Any], settings: CorrelationSettings = DEFAULT_SETTINGS
) -> Iterator[ev.BatchRecord]:
    """``for record in iter_records(event):`` each record's ID is bound while its loop body runs."""
    return iter(CorrelatedBatch(event, settings))


def process_batch(
    event: Mapping[str, Any],
    record_handler: Callable[[Any], Any],
    settings: CorrelationSettings = DEFAULT_SETTINGS,
) -> dict[str, list[dict[str, str]]]:
    """Run ``record_handler(record)`` per record under its ID; return ``{"batchItemFailures": [...]}``.

    A failing record is logged (under its own ID) and reported; on a FIFO queue every record after it is reported
    too without being run, as SQS requires to keep the group's order.
    """
    batch = CorrelatedBatch(event, settings)
    failed_fifo = False
    for record in batch:
        if failed_fifo:
            batch.fail(record)
            continue
        try:
            record_handler(record)
        except Exception:
            lambda_logger().exception(
                "record %s failed; reported in batchItemFailures",
                record.identifier,
                extra={"event.outcome": "failure", "event.action": "record-failed"},
            )
            batch.fail(record)
            failed_fifo = batch.fifo
    return batch.response()
