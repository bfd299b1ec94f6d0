"""A Lambda event is untrusted input: whatever shape a field has, the wrapper runs the handler once (a batch
handler once per record) and never raises from its own code (middleware/README.md, "AWS Lambda").

Every fixture event is taken apart one field at a time: each field (at any depth) replaced by each odd value below.
"""

from __future__ import annotations

from typing import Any

import pytest
from corrtrace.middleware import correlated_handler
from corrtrace.middleware.aws_lambda.events import BATCH_SOURCES
from opentelemetry.sdk.trace import TracerProvider

from tests.middleware.conftest import FIXTURES, load_fixture
from tests.shapes import ODD, variants

EVENTS = sorted(p.name for p in FIXTURES.glob("*.json"))


class Context:
    aws_request_id = "5bd1e6a4-2b0d-4c8b-9f3e-0c8f1f1d2a10"
    function_name = "orders"


@pytest.mark.parametrize("fixture", EVENTS)
@pytest.mark.parametrize("tracing", [False, True], ids=["plain", "tracing"])
def test_any_field_of_any_shape_runs_the_handler(fixture: str, tracing: bool) -> None:
    options: dict[str, Any] = {"tracing": True, "tracer_provider": TracerProvider()} if tracing else {}
    calls: list[Any] = []
    plain = correlated_handler(lambda event, context: calls.append(event) or {"statusCode": 200}, **options)
    records: list[Any] = []
    per_record = correlated_handler(lambda record, context: records.append(record), record_handler=True, **options)
    cases = 0
    for event in variants(load_fixture(fixture)):
        cases += 1
        before = len(calls)
        plain(event, Context())  # raises nothing
        assert len(calls) == before + 1
        rows = event.get("Records") if isinstance(event, dict) else None
        first = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
        source = first.get("eventSource") or first.get("EventSource")
        if isinstance(source, str) and source in BATCH_SOURCES:
            before = len(records)
            result = per_record(event, Context())
            assert result == {"batchItemFailures": []}
            assert len(records) == before + sum(isinstance(r, dict) for r in rows)
            assert all(r.identifier is not None and r.correlation_id for r in records[before:])
    assert cases >= len(ODD)
