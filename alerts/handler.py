"""The alert-handler Lambda: CloudWatch Logs subscription events and CloudWatch alarm events in, signed
rollback requests to the transaction manager out, one per correlation ID of the matching events.

- Subscription (``awslogs.data``, base64 gzip; also CloudWatch Logs records arriving through Kinesis): the
  events already matched the subscription filter; the handler re-checks them with the local engine (emulators
  ignore filter patterns), counts stream-consumer failures for the jam alert and rolls back each ID.
- Alarm (``source: aws.cloudwatch``, a transition into ALARM): the alarm carries no log events, so the handler
  reads the alert's log groups for the alarm's window and applies the alert's pattern locally.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson
from corrtrace.alerts.actions import RollbackClient
from corrtrace.alerts.correlation import correlation_id_of
from corrtrace.alerts.definitions import AlarmState, Alert
from corrtrace.alerts.jam import JamDetector
from corrtrace.alerts.patterns.compiler import MISSING

from corrtrace.awslogs import decode_awslogs, log_events, subscription_data
from corrtrace.ids import safe_excerpt
from corrtrace.shapes import entries, section
from corrtrace.timestamps import parse_timestamp_s

log = logging.getLogger("corrtrace.alerts.handler")


class LogLookup(Protocol):
    """Fetch log messages of one log group in a time window (epoch milliseconds)."""

    def __call__(self, log_group: str, start_ms: int, end_ms: int) -> Iterable[str]: ...


def logs_lookup(logs_client: Any) -> LogLookup:
    """A ``LogLookup`` reading FilterLogEvents without a pattern (the pattern is applied locally)."""

    def lookup(log_group: str, start_ms: int, end_ms: int) -> Iterable[str]:
        kwargs: dict[str, Any] = {"logGroupName": log_group, "startTime": start_ms, "endTime": end_ms}
        while True:
            page = logs_client.filter_log_events(**kwargs)
            for item in page.get("events", []):
                yield item.get("message", "")
            token = page.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token

    return lookup


class AlertHandler:
    """Turns subscription and alarm events into rollback requests; build one per Lambda container."""

    def __init__(
        self,
        client: RollbackClient,
        alerts: Sequence[Alert] = (),
        *,
        lookup: LogLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.alerts = list(alerts)
        self.lookup = lookup
        self.clock = clock
        self._by_subscription = {a.subscription_name: a for a in self.alerts}
        self._by_alarm = {a.alarm_name: a for a in self.alerts if a.alarm}
        self._jams = [(a, JamDetector(a.jam.threshold, a.jam.window)) for a in self.alerts if a.jam]

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Any event in, a result out: a malformed one is skipped with its reason (a retry cannot fix it)."""
        if not isinstance(event, Mapping):
            return {"kind": "unknown", "skipped": "not a JSON object"}
        if "awslogs" in event:
            try:
                payload = decode_awslogs(subscription_data(event))
            except ValueError as exc:
                log.warning("skipped a malformed subscription event: %s", exc)
                return {"kind": "subscription", "skipped": str(exc), "correlation_ids": []}
            return self._subscription([payload])
        records = entries(event, "Records")
        if records and isinstance(records[0], Mapping) and "kinesis" in records[0]:
            return self._subscription(self._kinesis_payloads(records))
        alarm = section(event, "alarmData")
        if event.get("source") == "aws.cloudwatch" and alarm:
            return self._alarm(alarm)
        if event.get("source") == "corrtrace.alerts" and isinstance(event.get("correlationIds"), list):
            name = str(alarm.get("alarmName", "corrtrace.alerts"))
            return self._rollback("lambda-action", [str(c) for c in event["correlationIds"]], name, "alarm action")
        return {"kind": "unknown", "skipped": "not a CloudWatch Logs, Kinesis or CloudWatch alarm event"}

    @staticmethod
    def _kinesis_payloads(records: list[Any]) -> Iterator[Mapping[str, Any]]:
        """The subscription payload of each Kinesis record; a record that holds none is skipped with a warning."""
        for record in records:
            data = section(record, "kinesis").get("data") if isinstance(record, Mapping) else None
            try:
                yield decode_awslogs(data if isinstance(data, str) else "")
            except ValueError as exc:
                log.warning("skipped a Kinesis record without a subscription payload: %s", exc)

    def _subscription(self, payloads: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        ids: dict[str, None] = {}
        jammed: dict[str, None] = {}
        source = "subscription"
        events = 0
        for payload in payloads:
            items, skipped = log_events(payload)
            if skipped:
                log.warning("skipped %d log event(s) of the wrong shape in a subscription payload", skipped)
            filters = [f for f in entries(payload, "subscriptionFilters") if isinstance(f, str)]
            source = filters[0] if filters else source
            alert = next((self._by_subscription[f] for f in filters if f in self._by_subscription), None)
            for item in items:
                events += 1
                message = item.message
                parsed = _parse(message)
                timestamp = item.timestamp / 1000.0
                cid = correlation_id_of(parsed if parsed is not MISSING else None, message)
                if cid is None:
                    continue
                for jam_alert, detector in self._jams:
                    if jam_alert.pattern.test(message, parsed) and detector.record(cid, timestamp):
                        jammed[cid] = None
                if alert is None or alert.pattern.test(message, parsed):
                    ids[cid] = None
        result = self._rollback("subscription", list(ids), source, "log event matched subscription filter")
        if jammed:
            extra = [cid for cid in jammed if cid not in ids]
            self._rollback("stream-jam", extra, "stream-jam", "stream jam: repeated failures")
            result["jammed"] = list(jammed)
        result["events"] = events
        return result

    def _alarm(self, data: Mapping[str, Any]) -> dict[str, Any]:
        name = str(data.get("alarmName", ""))
        state = section(data, "state")
        previous = section(data, "previousState")
        if state.get("value") != AlarmState.ALARM or previous.get("value") == AlarmState.ALARM:
            return {"kind": "alarm", "alarm": name, "skipped": "not a transition into ALARM", "correlation_ids": []}
        alert = self._by_alarm.get(name)
        if alert is None or alert.alarm is None or self.lookup is None:
            return {"kind": "alarm", "alarm": name, "skipped": "no alert definition or log lookup for this alarm"}
        end = parse_timestamp_s(state.get("timestamp")) or self.clock()
        start = None
        try:
            start = parse_timestamp_s(orjson.loads(state.get("reasonData") or "{}").get("startDate"))
        except (orjson.JSONDecodeError, AttributeError, TypeError):  # reasonData not a JSON object's text
            start = None
        span = alert.alarm.period * alert.alarm.evaluation_periods
        start = min(start, end - span) if start is not None else end - span
        ids: dict[str, None] = {}
        for group in alert.log_groups:
            for message in self.lookup(group, int(start * 1000), int((end + alert.alarm.period) * 1000)):
                parsed = _parse(message)
                if alert.pattern.test(message, parsed):
                    cid = correlation_id_of(parsed if parsed is not MISSING else None, message)
                    if cid is not None:
                        ids[cid] = None
        return self._rollback("alarm", list(ids), name, f"alarm {name} went to ALARM")

    def _rollback(self, kind: str, ids: list[str], source: str, reason: str) -> dict[str, Any]:
        done: list[str] = []
        failed: list[str] = []
        for cid in ids:
            try:
                self.client.rollback(cid, reason=reason, source=source)
                done.append(cid)
            except Exception as exc:
                failed.append(cid)
                log.error("rollback request for %s failed: %s", safe_excerpt(cid, 64), exc)
        return {"kind": kind, "source": source, "correlation_ids": ids, "rolled_back": done, "failed": failed}


def _parse(message: str) -> Any:
    if not message.startswith("{"):
        return MISSING
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError:
        return MISSING


_HANDLER: AlertHandler | None = None


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point; configuration from the ``alerts`` config section and the environment."""
    global _HANDLER
    if _HANDLER is None:
        import boto3
        from corrtrace.alerts.definitions import builtin_alerts, load_alerts
        from corrtrace.alerts.settings import load_settings
        from corrtrace.txmanager import TxManagerClient

        settings = load_settings()
        if not settings.txmanager_secret:
            raise RuntimeError("set CORRTRACE_TXMANAGER_SECRET for the alert handler")
        alerts = load_alerts(settings.file) if settings.file else builtin_alerts(settings.log_groups or None)
        logs = boto3.client("logs", region_name=settings.region, endpoint_url=settings.endpoint_url)
        _HANDLER = AlertHandler(
            TxManagerClient(settings.txmanager_url, settings.txmanager_secret), alerts, lookup=logs_lookup(logs)
        )
    return _HANDLER(event, context)
