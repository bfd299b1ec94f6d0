"""The CloudWatch Logs subscription payload (``awslogs.data``: base64 of gzip of JSON), decoded with caps.

Both the collector's subscription source and the alert-handler Lambda read it; the payload arrives from outside,
so the compressed size is capped at Lambda's 6 MB invocation limit and the decompressed size at four times that
(a gzip bomb stops there instead of filling memory), and a log event of the wrong shape is skipped, not raised on.
"""

from __future__ import annotations

import base64
import gzip
import io
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from corrtrace.shapes import entries, section

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 4 * MAX_PAYLOAD_BYTES


def decode_awslogs(data: str | bytes) -> dict[str, Any]:
    """The payload as a dict (``messageType``, ``logGroup``, ``logStream``, ``logEvents``...); ``ValueError`` with
    one line saying why when it is too large, not base64/gzip/JSON, or not a JSON object."""
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError as exc:
        raise ValueError(f"subscription payload is not base64 ({exc})") from None
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"subscription payload too large ({len(raw)} bytes > {MAX_PAYLOAD_BYTES})")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
            body = fh.read(MAX_DECOMPRESSED_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise ValueError(f"subscription payload is not gzip ({exc})") from None
    if len(body) > MAX_DECOMPRESSED_BYTES:
        raise ValueError(f"decompressed subscription payload too large (> {MAX_DECOMPRESSED_BYTES} bytes)")
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"subscription payload is not JSON ({exc})") from None
    if not isinstance(decoded, dict):
        raise ValueError("subscription payload is not a JSON object")
    return decoded


class LogEvent(NamedTuple):
    """One log event of a payload: its id, epoch milliseconds and message."""

    id: str
    timestamp: int
    message: str


def subscription_data(event: Any) -> Any:
    """``event["awslogs"]["data"]``; ``ValueError`` in one line when the event holds none."""
    data = section(event, "awslogs").get("data") if isinstance(event, Mapping) else None
    if not isinstance(data, str | bytes):
        raise ValueError("not a CloudWatch Logs subscription event (no awslogs.data)")
    return data


def log_events(payload: Mapping[str, Any]) -> tuple[list[LogEvent], int]:
    """The log events of a ``DATA_MESSAGE`` payload (none for a ``CONTROL_MESSAGE``), and how many items were
    skipped for their shape (not an object; no string id or message, no integer timestamp)."""
    if payload.get("messageType") != "DATA_MESSAGE":
        return [], 0
    found: list[LogEvent] = []
    skipped = 0
    for item in entries(payload, "logEvents"):
        event_id, timestamp, message = (
            (item.get("id"), item.get("timestamp"), item.get("message")) if isinstance(item, Mapping) else (0, 0, 0)
        )
        if isinstance(event_id, str) and type(timestamp) is int and isinstance(message, str):
            found.append(LogEvent(event_id, timestamp, message))
        else:
            skipped += 1
    return found, skipped
