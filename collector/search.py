"""Find one request's lines by correlation id in any backend, and render them as a timeline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from corrtrace.collector.sinks.base import Found, SearchQuery, search_id_problem

from corrtrace.ids import safe_excerpt
from corrtrace.shapes import whole_number
from corrtrace.timestamps import parse_timestamp_ms

if TYPE_CHECKING:
    from rich.table import Table

# terminal control sequences (colours, cursor moves, OSC titles/links) that services write into their messages
ANSI_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def _backend(backend: Any, index_prefix: str | None) -> Any:
    if hasattr(backend, "search") and hasattr(backend, "deliver"):
        return backend
    if type(backend).__module__.startswith(("elasticsearch", "opensearchpy")):
        from corrtrace.collector.sinks.elasticsearch import DEFAULT_PREFIX, ElasticsearchSink

        return ElasticsearchSink(backend, prefix=index_prefix or DEFAULT_PREFIX, install_template=False)
    if isinstance(backend, str):
        from corrtrace.collector.sinks.embedded import EmbeddedStore

        return EmbeddedStore(backend)
    if hasattr(backend, "filter_log_events"):
        from corrtrace.collector.sinks.cloudwatch import CloudWatchSink

        return CloudWatchSink(backend)
    raise TypeError(
        f"cannot search {type(backend).__name__}: pass an EmbeddedStore, an Elasticsearch client, "
        "an ElasticsearchSink, a CloudWatchSink or a boto3 logs client"
    )


def parse_time(value: str | int | float | datetime | None, *, now: datetime | None = None) -> int | None:
    """Epoch ms from an RFC 3339 time, epoch ms, a datetime, or a relative ``15m``/``2h``/``3d`` (ago)."""
    if value is None or isinstance(value, int | float):
        return None if value is None else int(value)
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    text = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parsed: int | None = None
    ago = whole_number(text[:-1]) if text[-1:] in units else None
    if ago is not None:
        base = now or datetime.now(UTC)
        try:
            parsed = int((base - timedelta(seconds=ago * units[text[-1]])).timestamp() * 1000)
        except (OverflowError, ValueError):  # before year 1
            parsed = None
    else:
        parsed = whole_number(text)
        if parsed is None:
            parsed = parse_timestamp_ms(text)
    if parsed is None or not _MIN_MS <= parsed <= _MAX_MS:
        raise ValueError(
            f"not a time: '{safe_excerpt(str(value), 40)}' (use RFC 3339, epoch milliseconds, or 15m / 2h / 3d)"
        )
    return parsed


# the times a store can be asked about: years 1..9999, as Python's datetime (and the stores' integers) hold them
_MIN_MS = int((datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
_MAX_MS = int(
    (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000
)


def search_events(
    correlation_id: str,
    *,
    backend: Any,
    since: Any = None,
    until: Any = None,
    service: str | None = None,
    level: str | None = None,
    limit: int = 10_000,
    index_prefix: str | None = None,
) -> Found:
    """The stored events of one request, sorted by ``@timestamp`` then arrival order, at most ``limit``
    (``Found.complete`` says whether that is all); ``ValueError`` for an id that no line can carry
    (``search_id_problem``)."""
    problem = search_id_problem(correlation_id)
    if problem:
        raise ValueError(problem)
    query = SearchQuery(correlation_id, parse_time(since), parse_time(until), service, level, limit)
    found: Found = _backend(backend, index_prefix).search(query)
    return found


def _get(event: dict[str, Any], dotted: str) -> Any:
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node[part] if part in node else node.get(dotted.split(".", dotted.count(".") - 1)[-1])
    return node


def timeline_rows(events: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Services in order of first appearance, and one row per line with its offset from the first line."""
    services: list[str] = []
    rows = []
    first = None
    for event in events:
        ts = parse_timestamp_ms(event.get("@timestamp")) or 0
        first = ts if first is None else first
        service = _get(event, "service.name") or "?"
        if service not in services:
            services.append(service)
        duration = _get(event, "event.duration")
        rows.append(
            {
                "offset_ms": ts - first,
                "service": service,
                "level": _get(event, "log.level") or "",
                "message": str(event.get("message", "")),
                "status": _get(event, "http.response.status_code"),
                "duration_ms": duration / 1e6 if isinstance(duration, int | float) else None,
                "target": _get(event, "service.target.name"),
                "stack": _get(event, "error.stack_trace"),
            }
        )
    return services, rows


def timeline_table(rows: list[dict[str, Any]], *, stacks: bool = True, max_message: int | None = None) -> Table:
    """The rows of ``timeline_rows`` as the table ``corrtrace search`` prints (the demo's summary reuses it):
    terminal control sequences are stripped from messages, stacks follow their message unless ``stacks=False``."""
    from rich.table import Table
    from rich.text import Text  # plain text: a message or stack holding "[...]" is not rich markup

    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (
        ("+ms", "right"),
        ("service", "left"),
        ("level", "left"),
        ("status", "right"),
        ("duration", "right"),
        ("message", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        target = f" -> {row['target']}" if row["target"] else ""
        message = str(row["message"])[:max_message] + (f"\n{row['stack']}" if stacks and row["stack"] else "")
        table.add_row(
            f"{row['offset_ms']:+d}",
            row["service"] + target,
            row["level"],
            "" if row["status"] is None else str(row["status"]),
            "" if row["duration_ms"] is None else f"{row['duration_ms']:.1f} ms",
            Text(ANSI_SEQUENCE.sub("", message)),
        )
    return table
