"""``@correlated_handler``: bind one correlation ID per invocation (per record for batches) and log Lambda fields.

Usable as ``@correlated_handler``, ``@correlated_handler(settings=..., record_handler=True)`` or
``handler = correlated_handler(fn)``. HTTP-style events get the ID back in the response headers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from corrtrace.context import get_log_fields, reset_correlation_id, reset_log_fields, set_correlation_id, set_log_fields
from corrtrace.ids import Accepted

from .._core import lambda_logger
from ..settings import DEFAULT_SETTINGS, CorrelationSettings, resolve
from . import events as ev
from .batch import process_batch, reader_for, record_id
from .extractors import EVENT_EXTRACTORS

F = TypeVar("F", bound=Callable[..., Any])
_cold_start = True
_TRIGGERS = {
    ev.HTTP: "http",
    ev.SQS: "pubsub",
    ev.SNS: "pubsub",
    ev.EVENTBRIDGE: "pubsub",
    ev.KINESIS: "datasource",
    ev.DYNAMODB: "datasource",
    ev.DIRECT: "other",
}


def invocation_id(event: Any, settings: CorrelationSettings = DEFAULT_SETTINGS) -> Accepted:
    """The ID of a whole invocation; a batch uses its only record's ID, else a fresh one."""
    source = ev.event_source(event)
    if source in ev.BATCH_SOURCES:
        records = event["Records"]
        if len(records) == 1:
            return record_id(source, records[0], settings)
        return reader_for(settings).read(None)
    candidate = None
    if isinstance(event, Mapping):
        try:
            candidate = EVENT_EXTRACTORS[source](event, settings)
        except Exception:
            candidate = None
    return reader_for(settings).read(candidate)


def _faas_fields(context: Any, source: str) -> dict[str, Any]:
    global _cold_start
    cold, _cold_start = _cold_start, False
    faas: dict[str, Any] = {"coldstart": cold, "trigger": {"type": _TRIGGERS.get(source, "other")}}
    name = getattr(context, "function_name", None)
    if name:
        faas["name"] = name
    execution = getattr(context, "aws_request_id", None)
    if execution:
        faas["execution"] = execution
    version = getattr(context, "function_version", None)
    if version:
        faas["version"] = version
    current = get_log_fields()
    fields = dict(current) if current else {}
    fields["faas"] = {**(fields.get("faas") or {}), **faas}
    return fields


def _with_header(result: Any, event: Mapping[str, Any], settings: CorrelationSettings, cid: str) -> Any:
    """The handler's HTTP response with the ID header added (never replacing one the handler set)."""
    name = settings.header_name
    kind = ev.http_kind(event)
    if not isinstance(result, Mapping) or "statusCode" not in result:
        if kind != "v2":
            return result  # v1/ALB need a statusCode dict: leave the handler's answer alone
        import json

        body = result if isinstance(result, str) else json.dumps(result)
        result = {"statusCode": 200, "body": body, "headers": {"content-type": "application/json"}}
    out = dict(result)
    if (kind == "alb" and "multiValueHeaders" in event) or "multiValueHeaders" in out:
        multi = dict(out.get("multiValueHeaders") or {})
        if not any(k.lower() == name.lower() for k in multi):
            multi[name] = [cid]
        out["multiValueHeaders"] = multi
        if kind == "alb" and "multiValueHeaders" in event:
            return out  # an ALB in multi-value mode ignores "headers"
    headers = dict(out.get("headers") or {})
    if not any(str(k).lower() == name.lower() for k in headers):
        headers[name] = cid
    out["headers"] = headers
    return out


@overload
def correlated_handler(fn: F, /, *, settings: CorrelationSettings | None = None, record_handler: bool = False) -> F: ...


@overload
def correlated_handler(
    fn: None = None, /, *, settings: CorrelationSettings | None = None, record_handler: bool = False, **overrides: Any
) -> Callable[[F], F]: ...


def correlated_handler(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    settings: CorrelationSettings | None = None,
    record_handler: bool = False,
    **overrides: Any,
) -> Any:
    """Wrap a Lambda handler ``(event, context)`` so it runs under the event's correlation ID.

    ``record_handler=True``: the wrapped function takes ``(record, context)`` and is called once per record of a
    batch event under that record's ID; the wrapper returns ``{"batchItemFailures": [...]}``.
    """
    resolved = resolve(settings, overrides)

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any = None) -> Any:
            source = ev.event_source(event)
            cid, _status, excerpt = invocation_id(event, resolved)
            token = set_correlation_id(cid)
            fields_token = set_log_fields(_faas_fields(context, source))
            try:
                if excerpt is not None:
                    lambda_logger().warning(
                        "rejected a correlation id in a %s event; using a new one",
                        source,
                        extra={"labels.rejected_correlation_id": excerpt},
                    )
                if record_handler and isinstance(event, Mapping) and event.get("Records") == []:
                    return {"batchItemFailures": []}  # an empty batch: nothing to run
                if record_handler and source in ev.BATCH_SOURCES:
                    return process_batch(event, lambda record: handler(record, context), resolved)
                try:
                    result = handler(event, context)
                except Exception:
                    lambda_logger().exception("handler failed", extra={"event.outcome": "failure"})
                    raise
                if source == ev.HTTP and resolved.echo_header:
                    result = _with_header(result, event, resolved, cid)
                return result
            finally:
                reset_log_fields(fields_token)
                reset_correlation_id(token)

        wrapper.__wrapped__ = handler  # type: ignore[attr-defined]
        return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate
