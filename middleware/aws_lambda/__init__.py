"""AWS Lambda: ``correlated_handler`` plus per-record batch helpers; stdlib-only so a cold start stays cheap."""

from .batch import CorrelatedBatch, iter_records, process_batch
from .events import BatchRecord, DynamoDBRecord, KinesisRecord, SNSRecord, SQSRecord, event_source
from .handler import correlated_handler, invocation_id

__all__ = [
    "BatchRecord",
    "CorrelatedBatch",
    "DynamoDBRecord",
    "KinesisRecord",
    "SNSRecord",
    "SQSRecord",
    "correlated_handler",
    "event_source",
    "invocation_id",
    "iter_records",
    "process_batch",
]
