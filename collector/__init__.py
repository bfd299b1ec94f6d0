"""corrtrace.collector: ship JSON log lines to Elasticsearch/OpenSearch, CloudWatch Logs or an embedded
SQLite store with nothing lost, and find one request's lines by correlation id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.pipeline import Pipeline, PipelineStats, Subscriber
from corrtrace.collector.record import Record
from corrtrace.collector.retry import Backoff, DeadLetters
from corrtrace.collector.search import search_events
from corrtrace.collector.sinks.base import Found, SearchQuery, Sink
from corrtrace.collector.sinks.cloudwatch import CloudWatchSink, logs_client
from corrtrace.collector.sinks.cw_batcher import CwLimits
from corrtrace.collector.sinks.elasticsearch import ElasticsearchSink, connect, ensure_index_template
from corrtrace.collector.sinks.embedded import EmbeddedStore
from corrtrace.collector.sources.base import Source
from corrtrace.collector.sources.logging_handler import ShippingHandler
from corrtrace.collector.sources.multiline import Multiline
from corrtrace.collector.sources.stdin import StreamSource
from corrtrace.collector.sources.tail import FileTail


def ship_files(
    paths: Sequence[str | os.PathLike[str]],
    sinks: Sequence[Sink],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    subscribers: Sequence[Subscriber] = (),
    **options: Any,
) -> PipelineStats:
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


# what a user calls: sources, sinks (with their settings; ``Record`` is what a sink receives), the pipeline,
# search. Helpers (batching, message splitting, index templates' bodies, parsing) stay in their modules.
__all__ = [
    "Backoff",
    "Checkpoint",
    "CloudWatchSink",
    "CwLimits",
    "DeadLetters",
    "ElasticsearchSink",
    "EmbeddedStore",
    "FileTail",
    "Found",
    "Multiline",
    "Pipeline",
    "PipelineStats",
    "Record",
    "SearchQuery",
    "ShippingHandler",
    "Sink",
    "Source",
    "StreamSource",
    "connect",
    "ensure_index_template",
    "logs_client",
    "search_events",
    "ship_files",
]
