"""Put the current correlation ID on outbound calls: httpx and requests (HTTP header), boto3 (message data).

Nothing here replaces a client: httpx gets event hooks, a requests ``Session`` gets its mounted adapters wrapped,
boto3 gets botocore event handlers on a ``Session`` (clients created after) or on one client. Each call made
under an ID is also logged once as ``corrtrace.outbound`` with the callee in ``service.target.name``, which is
how a flow's edges are drawn. httpx, requests and boto3 are imported only by the function that needs them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from corrtrace.context import get_correlation_id

from .settings import DEFAULT_SETTINGS, CorrelationSettings

TraceInjector = Callable[[MutableMapping[str, str]], None]
_trace_injector: TraceInjector | None = None
_START = "corrtrace.start"
MAX_MESSAGE_ATTRIBUTES = 10  # SQS and SNS both reject an 11th attribute


def set_trace_injector(injector: TraceInjector | None) -> None:
    """Installed by ``corrtrace.middleware.otel``: adds ``traceparent``/``baggage`` to outbound HTTP headers."""
    global _trace_injector
    _trace_injector = injector


def outbound_headers(settings: CorrelationSettings = DEFAULT_SETTINGS) -> dict[str, str]:
    """The headers an outbound HTTP call should carry now (empty outside a correlated context)."""
    headers: dict[str, str] = {}
    cid = get_correlation_id()
    if cid is not None:
        headers[settings.header_name] = cid
    if _trace_injector is not None:
        _trace_injector(headers)
    return headers


def _log_call(
    settings: CorrelationSettings,
    action: str,
    target: str,
    start: int | None,
    status: int | None,
    error: BaseException | None = None,
    message: str = "",
) -> None:
    log = logging.getLogger(settings.outbound_logger)
    if not log.isEnabledFor(logging.INFO):
        return
    extra: dict[str, Any] = {
        "event.dataset": "corrtrace.outbound",
        "event.action": action,
        "service.target.name": target,
        "event.outcome": "failure" if error is not None or (status or 0) >= 500 else "success",
    }
    if start:
        extra["event.duration"] = time.perf_counter_ns() - start
    if status is not None:
        extra["http.response.status_code"] = status
    if error is not None:
        extra["error.type"] = type(error).__name__
    log.info("%s -> %s", message or action, target, extra=extra)


def _http_target(settings: CorrelationSettings, url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return settings.target_name(host, parts.port)


# --- httpx ------------------------------------------------------------------------------------------------------


def _httpx_request(settings: CorrelationSettings, request: Any) -> None:
    for name, value in outbound_headers(settings).items():
        if name not in request.headers:
            request.headers[name] = value
    request.extensions[_START] = time.perf_counter_ns()


def _httpx_response(settings: CorrelationSettings, response: Any) -> None:
    request = response.request
    if get_correlation_id() is None:
        return
    _log_call(
        settings,
        "http-request",
        _http_target(settings, str(request.url)),
        request.extensions.get(_START),
        response.status_code,
        message=f"{request.method} {request.url.path}",
    )


def httpx_event_hooks(settings: CorrelationSettings = DEFAULT_SETTINGS) -> dict[str, list[Callable[[Any], Any]]]:
    """Hooks for ``httpx.Client(event_hooks=...)``."""
    return {
        "request": [lambda request: _httpx_request(settings, request)],
        "response": [lambda response: _httpx_response(settings, response)],
    }


def async_httpx_event_hooks(settings: CorrelationSettings = DEFAULT_SETTINGS) -> dict[str, list[Callable[[Any], Any]]]:
    """Hooks for ``httpx.AsyncClient(event_hooks=...)`` (httpx awaits them, so they must be coroutines)."""

    async def on_request(request: Any) -> None:
        _httpx_request(settings, request)

    async def on_response(response: Any) -> None:
        _httpx_response(settings, response)

    return {"request": [on_request], "response": [on_response]}


def instrument_httpx(client: Any, settings: CorrelationSettings = DEFAULT_SETTINGS) -> Any:
    """Add the hooks to an existing ``httpx.Client`` or ``httpx.AsyncClient``, keeping its own; returns it."""
    import httpx

    if isinstance(client, httpx.AsyncClient):
        hooks = async_httpx_event_hooks(settings)
    elif isinstance(client, httpx.Client):
        hooks = httpx_event_hooks(settings)
    else:
        raise TypeError(f"instrument_httpx expects an httpx.Client or httpx.AsyncClient, got {type(client).__name__}")
    current = client.event_hooks
    client.event_hooks = {
        "request": [*current.get("request", []), *hooks["request"]],
        "response": [*current.get("response", []), *hooks["response"]],
    }
    return client


# --- requests ---------------------------------------------------------------------------------------------------


def instrument_requests(session: Any, settings: CorrelationSettings = DEFAULT_SETTINGS) -> Any:
    """Wrap each adapter mounted on a ``requests.Session`` (custom ones too) so calls carry the ID; returns it."""
    from requests.adapters import BaseAdapter

    class CorrelatedAdapter(BaseAdapter):
        """Delegates to the adapter it wraps; adds the headers and logs the call."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            for name, value in outbound_headers(settings).items():
                request.headers.setdefault(name, value)
            start = time.perf_counter_ns()
            try:
                response = self.inner.send(request, *args, **kwargs)
            except Exception as exc:
                if get_correlation_id() is not None:
                    _log_call(settings, "http-request", _http_target(settings, request.url), start, None, exc)
                raise
            if get_correlation_id() is not None:
                path = urlsplit(request.url).path
                target = _http_target(settings, request.url)
                _log_call(
                    settings, "http-request", target, start, response.status_code, None, f"{request.method} {path}"
                )
            return response

        def close(self) -> None:
            self.inner.close()

    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, CorrelatedAdapter) and type(adapter).__name__ != "CorrelatedAdapter":
            session.mount(prefix, CorrelatedAdapter(adapter))
    return session


# --- boto3 / botocore -------------------------------------------------------------------------------------------


def _with_attributes(attributes: Mapping[str, Any] | None, fields: Mapping[str, str]) -> dict[str, Any] | None:
    """Message attributes plus ``fields`` (in order: the ID first), each unless the caller set it or there is no
    room left (SQS and SNS take 10); None when nothing was added."""
    current = dict(attributes or {})
    added = False
    for name, value in fields.items():
        if name not in current and len(current) < MAX_MESSAGE_ATTRIBUTES:
            current[name] = {"DataType": "String", "StringValue": value}
            added = True
    return current if added else None


def _with_json_fields(document: Any, fields: Mapping[str, str]) -> Any:
    """A JSON object (text or bytes) with ``fields`` added (never replacing the caller's); anything that is not a
    JSON object comes back as is."""
    try:
        parsed = json.loads(document)
    except (TypeError, ValueError):
        return document
    if not isinstance(parsed, dict):
        return document
    added = {k: v for k, v in fields.items() if k not in parsed}
    if not added:
        return document
    text = json.dumps({**parsed, **added}, separators=(",", ":"))
    return text.encode() if isinstance(document, bytes | bytearray) else text


def message_fields(attribute: str, cid: str) -> dict[str, str]:
    """What a message should carry now: the ID, and with tracing on ``traceparent`` and ``baggage`` (the ID a
    member of it), which the Lambda batch handler continues the trace from."""
    fields = {attribute: cid}
    if _trace_injector is not None:
        headers: dict[str, str] = {}
        _trace_injector(headers)
        if "traceparent" in headers:
            fields["traceparent"] = headers["traceparent"]
        members = [m for m in headers.get("baggage", "").split(",") if m.strip()]
        if not any(m.split("=", 1)[0].strip() == attribute for m in members):
            members.append(f"{attribute}={cid}")
        fields["baggage"] = ",".join(members)
    return fields


def _queue_name(params: Mapping[str, Any]) -> str:
    """The queue's name from the call's ``QueueUrl`` (the last path segment)."""
    return str(params.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]


class BotocoreHooks:
    """The botocore event handlers: add the ID to the call's parameters, then log the call when it returns."""

    def __init__(self, settings: CorrelationSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self.attribute = settings.message_attribute

    def _mark(self, context: MutableMapping[str, Any] | None, action: str, target: str) -> None:
        if context is not None:
            context[_START] = (action, self.settings.service_map.get(target, target), time.perf_counter_ns())

    def _tag(self, message: dict[str, Any], cid: str) -> None:
        """Add the ID (and trace) attributes to one SQS/SNS message in place (unless full or already set)."""
        attrs = _with_attributes(message.get("MessageAttributes"), message_fields(self.attribute, cid))
        if attrs is not None:
            message["MessageAttributes"] = attrs

    def _tag_batch(self, params: dict[str, Any], key: str, cid: str) -> None:
        """Replace the batch under ``key`` with copies of its entries carrying the ID (and trace) attributes."""
        fields = message_fields(self.attribute, cid)
        entries = []
        for entry in params.get(key, []):
            attrs = _with_attributes(entry.get("MessageAttributes"), fields)
            entries.append({**entry, "MessageAttributes": attrs} if attrs is not None else entry)
        params[key] = entries

    def sqs_send(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        self._tag(params, cid)
        self._mark(context, "sqs-send", _queue_name(params))

    def sqs_send_batch(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        self._tag_batch(params, "Entries", cid)
        self._mark(context, "sqs-send", _queue_name(params))

    def sns_publish(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        self._tag(params, cid)
        arn = params.get("TopicArn") or params.get("TargetArn") or params.get("PhoneNumber") or "sns"
        self._mark(context, "sns-publish", str(arn).rsplit(":", 1)[-1])

    def sns_publish_batch(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        self._tag_batch(params, "PublishBatchRequestEntries", cid)
        self._mark(context, "sns-publish", str(params.get("TopicArn", "sns")).rsplit(":", 1)[-1])

    def events_put(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        fields = message_fields(self.attribute, cid)
        entries = []
        for entry in params.get("Entries", []):
            entries.append({**entry, "Detail": _with_json_fields(entry.get("Detail", "{}"), fields)})
        params["Entries"] = entries
        bus = next((e.get("EventBusName") for e in entries if e.get("EventBusName")), "default")
        self._mark(context, "eventbridge-put", str(bus).rsplit("/", 1)[-1])

    def dynamodb_put(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        item = params.get("Item")
        if isinstance(item, dict) and self.attribute not in item:
            params["Item"] = {**item, self.attribute: {"S": cid}}
        self._mark(context, "dynamodb-put", str(params.get("TableName", "dynamodb")).rsplit("/", 1)[-1])

    def dynamodb_batch_write(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        tables = {}
        for table, requests in (params.get("RequestItems") or {}).items():
            out = []
            for request in requests:
                put = request.get("PutRequest")
                if put and self.attribute not in put.get("Item", {}):
                    request = {**request, "PutRequest": {**put, "Item": {**put["Item"], self.attribute: {"S": cid}}}}
                out.append(request)
            tables[table] = out
        params["RequestItems"] = tables
        self._mark(context, "dynamodb-put", ",".join(tables) or "dynamodb")

    def kinesis_put(self, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        cid = get_correlation_id()
        if cid is None:
            return
        if "Data" in params:
            params["Data"] = _with_json_fields(params["Data"], {self.attribute: cid})
        if "Records" in params:
            params["Records"] = [
                {**r, "Data": _with_json_fields(r.get("Data"), {self.attribute: cid})} for r in params["Records"]
            ]
        stream = params.get("StreamName") or str(params.get("StreamARN", "kinesis")).rsplit("/", 1)[-1]
        self._mark(context, "kinesis-put", str(stream))

    def after_call(self, http_response: Any = None, context: Any = None, **_: Any) -> None:
        marked = context.pop(_START, None) if context is not None else None
        if marked is not None:
            action, target, start = marked
            status = getattr(http_response, "status_code", None)
            _log_call(self.settings, action, target, start, status)

    def after_call_error(self, exception: BaseException | None = None, context: Any = None, **_: Any) -> None:
        marked = context.pop(_START, None) if context is not None else None
        if marked is not None:
            action, target, start = marked
            _log_call(self.settings, action, target, start, None, exception or RuntimeError("call failed"))

    def handlers(self) -> list[tuple[str, Callable[..., None]]]:
        pairs: list[tuple[str, Callable[..., None]]] = [
            ("sqs.SendMessage", self.sqs_send),
            ("sqs.SendMessageBatch", self.sqs_send_batch),
            ("sns.Publish", self.sns_publish),
            ("sns.PublishBatch", self.sns_publish_batch),
            ("eventbridge.PutEvents", self.events_put),
        ]
        if self.settings.propagate_dynamodb:
            pairs += [("dynamodb.PutItem", self.dynamodb_put), ("dynamodb.BatchWriteItem", self.dynamodb_batch_write)]
        if self.settings.propagate_kinesis:
            pairs += [("kinesis.PutRecord", self.kinesis_put), ("kinesis.PutRecords", self.kinesis_put)]
        return pairs


def instrument_boto3(target: Any, settings: CorrelationSettings = DEFAULT_SETTINGS, **overrides: Any) -> BotocoreHooks:
    """Register the hooks on a boto3 ``Session`` (affects clients it creates afterwards) or on one client.

    DynamoDB items and Kinesis records are opt-in: ``instrument_boto3(s, propagate_dynamodb=True,
    propagate_kinesis=True)`` (they change stored data, so the owner of the table/stream decides).
    ``tracing=True`` (or an HTTP middleware with tracing on in the process) adds ``traceparent`` and ``baggage``
    to SQS/SNS message attributes and EventBridge ``detail``.
    """
    if overrides:
        settings = settings.replace(**overrides)
    meta = getattr(target, "meta", None)
    events = getattr(meta, "events", None) or getattr(target, "events", None)
    if events is None:
        raise TypeError(
            f"instrument_boto3 expects a boto3/botocore Session or client, got {type(target).__name__}; "
            "pass boto3.Session() before creating clients, or the client itself"
        )
    if settings.tracing:  # traceparent/baggage on messages, from the current span
        from .otel import install

        install()
    hooks = BotocoreHooks(settings)
    for suffix, handler in hooks.handlers():
        events.register(f"before-parameter-build.{suffix}", handler, unique_id=f"corrtrace-{suffix}")
        events.register(f"after-call.{suffix}", hooks.after_call, unique_id=f"corrtrace-after-{suffix}")
        events.register(f"after-call-error.{suffix}", hooks.after_call_error, unique_id=f"corrtrace-err-{suffix}")
    return hooks
