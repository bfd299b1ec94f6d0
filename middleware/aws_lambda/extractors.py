"""One extractor per event source: where the correlation ID travels in each kind of Lambda event.

Every extractor returns the raw candidate (or None); the caller validates it with the core policy, so a hostile
value in any payload is replaced, never used. The carrier names come from ``CorrelationSettings``:
``message_attribute`` (SQS/SNS attribute, EventBridge detail key, DynamoDB attribute, Kinesis JSON field) and
``header_name`` (+ fallbacks) for HTTP events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from corrtrace.shapes import section

from ..settings import CorrelationSettings
from . import events as ev

Extractor = Callable[[Mapping[str, Any], CorrelationSettings], Any]
MAX_BODY_SCAN = 256 * 1024  # a body larger than this is not parsed just to look for an ID


def _loads(text: Any) -> Any:
    """Parse a body that looks like a JSON object; anything else (or anything huge) is None."""
    if not isinstance(text, str | bytes) or not text or len(text) > MAX_BODY_SCAN:
        return None
    if text.lstrip()[:1] not in ("{", b"{"):
        return None
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None


def _names(settings: CorrelationSettings) -> tuple[str, ...]:
    return (settings.message_attribute, settings.header_name)


def _attribute_value(attributes: Any, names: tuple[str, ...], value_key: str) -> Any:
    """The first of ``names`` with a value: SQS and SNS differ only in the value key's spelling."""
    for name in names:
        attribute = attributes.get(name)
        if isinstance(attribute, Mapping) and attribute.get(value_key) is not None:
            return attribute.get(value_key)
    return None


def from_headers(event: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """API Gateway v1/v2, ALB and function URLs: ``headers`` or ``multiValueHeaders``, case-insensitively."""
    wanted = [settings.header_name.lower(), *(h.lower() for h in settings.fallback_headers)]
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field)
        if not isinstance(headers, Mapping):
            continue
        lowered = {str(k).lower(): v for k, v in headers.items()}
        for name in wanted:
            value = lowered.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            if value is not None:
                return value
    return None


def from_sqs(record: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """SQS message attribute; else an SNS envelope (SNS-to-SQS), an EventBridge event or a JSON body field."""
    found = _attribute_value(section(record, "messageAttributes"), _names(settings), "stringValue")
    if found is not None:
        return found
    body = _loads(record.get("body"))
    if isinstance(body, Mapping):
        if body.get("Type") == "Notification" and "TopicArn" in body:
            return from_sns({"Sns": body}, settings)
        if "detail-type" in body:
            return from_eventbridge(body, settings)
        return from_direct(body, settings)
    return None


def from_sns(record: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """SNS message attribute (``{"Type": "String", "Value": ...}``); else a JSON message field."""
    sns = section(record, "Sns")
    found = _attribute_value(section(sns, "MessageAttributes"), _names(settings), "Value")
    if found is not None:
        return found
    message = _loads(sns.get("Message"))
    return from_direct(message, settings) if isinstance(message, Mapping) else None


def from_eventbridge(event: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """EventBridge: ``detail.<message_attribute>`` (what the PutEvents hook writes)."""
    detail = event.get("detail")
    return from_direct(detail, settings) if isinstance(detail, Mapping) else None


def from_dynamodb(record: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """DynamoDB Streams: the item attribute in ``NewImage`` (``OldImage`` for a REMOVE)."""
    stream = section(record, "dynamodb")
    for image in ("NewImage", "OldImage"):
        attribute = section(stream, image).get(settings.message_attribute)
        if isinstance(attribute, Mapping) and "S" in attribute:
            return attribute["S"]
    return None


def from_kinesis(record: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """Kinesis: a field of the record's base64 JSON data (what the PutRecord hook writes)."""
    import base64
    import binascii

    data = section(record, "kinesis").get("data")
    if not isinstance(data, str) or len(data) > MAX_BODY_SCAN * 2:
        return None
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    parsed = _loads(decoded)
    return from_direct(parsed, settings) if isinstance(parsed, Mapping) else None


def from_direct(event: Mapping[str, Any], settings: CorrelationSettings) -> Any:
    """A direct invocation payload (or a JSON body): a top-level field, or a ``headers`` object."""
    for name in _names(settings):
        if name in event:
            return event[name]
    headers = event.get("headers")
    if isinstance(headers, Mapping):
        return from_headers(event, settings)
    return None


def trace_carrier(source: str, record: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(traceparent, baggage)`` a record carries (what the outbound hooks write with tracing on), else Nones:
    SQS and SNS message attributes, an SNS envelope or an EventBridge event in an SQS body."""
    if source == ev.SQS:
        attributes = section(record, "messageAttributes")
        traceparent, bag = (_attribute_value(attributes, (name,), "stringValue") for name in _TRACE)
        if traceparent is not None:
            return traceparent, bag
        body = _loads(record.get("body"))
        if isinstance(body, Mapping) and body.get("Type") == "Notification":
            return trace_carrier(ev.SNS, {"Sns": body})
        if isinstance(body, Mapping) and isinstance(body.get("detail"), Mapping):
            return body["detail"].get("traceparent"), body["detail"].get("baggage")
    elif source == ev.SNS:
        attributes = section(section(record, "Sns"), "MessageAttributes")
        traceparent, bag = (_attribute_value(attributes, (name,), "Value") for name in _TRACE)
        return traceparent, bag
    return None, None


_TRACE = ("traceparent", "baggage")

RECORD_EXTRACTORS: dict[str, Extractor] = {
    ev.SQS: from_sqs,
    ev.SNS: from_sns,
    ev.KINESIS: from_kinesis,
    ev.DYNAMODB: from_dynamodb,
}
EVENT_EXTRACTORS: dict[str, Extractor] = {
    ev.HTTP: from_headers,
    ev.EVENTBRIDGE: from_eventbridge,
    ev.DIRECT: from_direct,
}
