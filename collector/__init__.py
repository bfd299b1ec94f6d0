"""corrtrace.collector: ship JSON log lines to Elasticsearch/OpenSearch, CloudWatch Logs or an embedded
SQLite store with nothing lost, and find one request's lines by correlation id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.pipeline import Pipeline, PipelineStats, Subscriber
from corrtrace.collector.record import Record, make_record
from corrtrace.collector.retry import Backoff, DeadLetters
from corrtrace.collector.search import search_events
from corrtrace.collector.sinks.base import SearchQuery, Sink
from corrtrace.collector.sinks.cloudwatch import CloudWatchSink, logs_client
from corrtrace.collector.sinks.cw_batcher import CwLimits, plan_batches, split_message
from corrtrace.collector.sinks.elasticsearch import (
    DEFAULT_PREFIX,
    ElasticsearchSink,
    connect,
    ensure_index_template,
    template_body,
)
from corrtrace.collector.sinks.embedded import EmbeddedStore
from corrtrace.collector.sources.handler import ShippingHandler
from corrtrace.collector.sources.multiline import Multiline
from corrtrace.collector.sources.tail import FileTail


def ship_files(paths: Sequence[str | os.PathLike[str]], sinks: Sequence[Sink], *,
               data_dir: str | os.PathLike[str] | None = None, subscribers: Sequence[Subscriber] = (),
               **options: Any) -> PipelineStats:
    """Ship the files (paths or globs) once, to every sink, and return when all of it is acknowledged.

    With ``data_dir`` the checkpoint there is used and kept, so calling it again ships only what is new. Lines
    are read as ``corrtrace collect`` reads them by default: the built-in formats, Python/Java multiline records.
    """
    pipeline = Pipeline([], sinks, data_dir=data_dir, subscribers=subscribers, once=True, **options)
    pipeline.sources.append(Multiline(FileTail([os.fspath(p) for p in paths], pipeline.checkpoint)))
    try:
        return pipeline.run()
    finally:
        pipeline.close()


__all__ = [
    "DEFAULT_PREFIX", "Backoff", "Checkpoint", "CloudWatchSink", "CwLimits", "DeadLetters", "ElasticsearchSink",
    "EmbeddedStore", "FileTail", "Multiline", "Pipeline", "PipelineStats", "Record", "SearchQuery",
    "ShippingHandler", "Sink",
    "connect", "ensure_index_template", "logs_client", "make_record", "plan_batches", "search_events",
    "ship_files", "split_message", "template_body",
]
