"""Lambda handler for CloudWatch Logs subscription events: AWS's own pattern for streaming CloudWatch Logs
into an Elasticsearch/OpenSearch domain. The CloudWatch event id is the document ``_id``, so a Lambda retry
(the whole invocation is retried on error) never duplicates.

Environment: ``CORRTRACE_COLLECTOR_ES_URL`` (or ``ES_URL``), ``CORRTRACE_COLLECTOR_INDEX_PREFIX``,
``CORRTRACE_COLLECTOR_ES_API_KEY`` or ``..._ES_USERNAME``/``..._ES_PASSWORD``, ``..._DEAD_LETTER_PATH``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson
from corrtrace.collector.record import Record, make_record
from corrtrace.collector.retry import Backoff, DeadLetters
from corrtrace.collector.sinks.elasticsearch import DEFAULT_PREFIX, ElasticsearchSink, connect

from corrtrace.awslogs import decode_awslogs, log_events, subscription_data

log = logging.getLogger("corrtrace.collector")
_sink: ElasticsearchSink | None = None


def decode(event: dict[str, Any]) -> dict[str, Any]:
    """The ``awslogs.data`` payload, decoded with the size caps of ``corrtrace.awslogs``."""
    return decode_awslogs(subscription_data(event))


def records_from(payload: dict[str, Any]) -> list[Record]:
    """One record per log event; lines that are not JSON are wrapped, never dropped; an item of the wrong shape
    (``corrtrace.awslogs.log_events``) is skipped with a warning."""
    items, skipped = log_events(payload)
    if skipped:
        log.warning("skipped %d log event(s) of the wrong shape in a subscription payload", skipped)
    group, stream = str(payload.get("logGroup", "")), str(payload.get("logStream", ""))
    out = []
    for item in items:
        record, doc = make_record(
            "cwl", 0, 0, item.message.encode(), doc_id=f"cwl-{item.id}", default_ts=item.timestamp
        )
        doc.setdefault("aws", {}).setdefault("cloudwatch", {}).update(
            {"log_group": group, "log_stream": stream, "event_id": item.id}
        )
        record.raw = orjson.dumps(doc)
        out.append(record)
    return out


def _default_sink() -> ElasticsearchSink:
    global _sink
    if _sink is None:
        env = os.environ
        url = env.get("CORRTRACE_COLLECTOR_ES_URL") or env.get("ES_URL") or "http://127.0.0.1:9200"
        client = connect(
            url,
            api_key=env.get("CORRTRACE_COLLECTOR_ES_API_KEY"),
            username=env.get("CORRTRACE_COLLECTOR_ES_USERNAME"),
            password=env.get("CORRTRACE_COLLECTOR_ES_PASSWORD"),
            ca_certs=env.get("CORRTRACE_COLLECTOR_ES_CA_CERTS"),
        )
        _sink = ElasticsearchSink(
            client,
            prefix=env.get("CORRTRACE_COLLECTOR_INDEX_PREFIX", DEFAULT_PREFIX),
            dead_letters=DeadLetters(
                env.get("CORRTRACE_COLLECTOR_DEAD_LETTER_PATH", "/tmp/corrtrace-dead-letters.jsonl")
            ),
            backoff=Backoff(0.2, 5.0),
            max_attempts=8,
        )
    return _sink


def handler(event: dict[str, Any], context: Any = None, *, sink: ElasticsearchSink | None = None) -> dict[str, int]:
    """Index one subscription delivery. Raises if Elasticsearch stays down, so Lambda retries the invocation; an
    event that is no subscription payload (a retry cannot fix it) is answered with ``malformed: 1`` and a warning."""
    target = sink or _default_sink()
    try:
        payload = decode(event)
    except ValueError as exc:
        log.warning("skipped a malformed subscription event: %s", exc)
        return {"received": 0, "acknowledged": 0, "malformed": 1}
    records = records_from(payload)
    before = target.stats.delivered + target.stats.duplicates + target.stats.dead_lettered
    if records:
        target.deliver(records)
    after = target.stats.delivered + target.stats.duplicates + target.stats.dead_lettered
    return {"received": len(records), "acknowledged": after - before}
