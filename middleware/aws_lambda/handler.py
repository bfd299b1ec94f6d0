"""``@correlated_handler``: bind one correlation ID per invocation (per record for batches) and log Lambda fields.

Usable as ``@correlated_handler``, ``@correlated_handler(settings=..., record_handler=True)`` or
``handler = correlated_handler(fn)``. HTTP-style events get the ID back in the response headers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from corrtrace.context import get_log_fields, reset_correlation_id, reset_log_fields, set_correlation_id, set_log_fields
from corrtrace.ids import Accepted

from .._core import lambda_logger
from ..settings import DEFAULT_SETTINGS, CorrelationSettings, resolve
from . import events as ev
from . import powertools
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


def invocation_id(event: Any, settings: CorrelationSettings = DEFAULT_SETTINGS, context: Any = None) -> Accepted:
    """The ID of a whole invocation (a batch with one record: that record's).

    Where it comes from, first found wins: ``settings.correlation_id_path``, the source's carrier (header,
    attribute, ``detail``...), then, only when neither holds anything, the event's ``requestContext.requestId``
    and the context's ``aws_request_id`` (as Powertools falls back); else a fresh one. A value that is there but
    invalid (empty included) is replaced by a fresh ID, never by a fallback, and reported.
    """
    source = ev.event_source(event)
    reader = reader_for(settings)
    if source in ev.BATCH_SOURCES and len(event["Records"]) == 1:
        return record_id(source, event["Records"][0], settings)
    candidate = None
    if isinstance(event, Mapping):
        try:
            if settings.correlation_id_path:
                candidate = at_path(event, settings.correlation_id_path)
            if candidate is None and source not in ev.BATCH_SOURCES:
                candidate = EVENT_EXTRACTORS[source](event, settings)
        except Exception:  # a malformed event: no carried ID, the fallbacks decide
            candidate = None
    if candidate is None:
        context_of_request = event.get("requestContext") if isinstance(event, Mapping) else None
        fallbacks = (
            context_of_request.get("requestId") if isinstance(context_of_request, Mapping) else None,
            getattr(context, "aws_request_id", None),
        )
        for fallback in fallbacks:
            found = reader.read(fallback) if fallback is not None else None
            if found is not None and found.status == "accepted":
                return found
    return reader.read(candidate)


_compiled: dict[str, Any] = {}


def at_path(event: Mapping[str, Any], path: str) -> Any:
    """The value at the JMESPath ``path`` in ``event`` (None when absent); compiled once per path."""
    expression = _compiled.get(path)
    if expression is None:
        expression = _compiled[path] = compile_path(path)
    return expression.search(event)


def compile_path(path: str) -> Any:
    try:
        import jmespath
        from jmespath.exceptions import JMESPathError
    except ImportError as exc:
        raise ImportError("correlation_id_path needs jmespath (installed with boto3): pip install jmespath") from exc
    try:
        return jmespath.compile(path)
    except JMESPathError as exc:
        raise ValueError(f"correlation_id_path {path!r} is not a JMESPath expression: {exc}") from None


def xray_trace_id() -> str | None:
    """The X-Ray trace ID of this invocation (``Root=`` of ``_X_AMZN_TRACE_ID``, set by the Lambda runtime)."""
    header = os.environ.get("_X_AMZN_TRACE_ID")
    if not header or len(header) > 512:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value and len(value) <= 64 and value.replace("-", "").isalnum():
            return value
    return None


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
    trace_id = xray_trace_id()
    if trace_id is not None:
        fields["trace"] = {**(fields.get("trace") or {}), "id": trace_id}
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
    if resolved.correlation_id_path:
        _compiled[resolved.correlation_id_path] = compile_path(resolved.correlation_id_path)  # a bad path fails now

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any = None) -> Any:
            source = ev.event_source(event)
            cid, _status, excerpt = invocation_id(event, resolved, context)
            token = set_correlation_id(cid)
            fields_token = set_log_fields(_faas_fields(context, source))
            restore_powertools = powertools.bind(cid)
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
                restore_powertools()
                reset_log_fields(fields_token)
                reset_correlation_id(token)

        wrapper.__wrapped__ = handler  # type: ignore[attr-defined]
        return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate
