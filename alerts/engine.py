"""Local alert evaluation: the same alert file CloudWatch runs, applied to a live event stream.

``feed`` applies every metric filter to one log event (JSON patterns on the already parsed event) and records
datapoints and the correlation IDs of matching events; ``tick`` evaluates the alarms with CloudWatch's rules
and fires the actions of an alarm that goes to ALARM with those correlation IDs. With a CloudWatch client the
datapoints are also sent with PutMetricData and state changes mirrored with SetAlarmState.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
from corrtrace.alerts.actions import Action, AlarmNotification, run_actions
from corrtrace.alerts.alarm_state import AlarmStateFile
from corrtrace.alerts.correlation import correlation_id_of
from corrtrace.alerts.definitions import Alert
from corrtrace.alerts.evaluator import ALARM, OK, AlarmEvaluator, Transition
from corrtrace.alerts.jam import JamDetector
from corrtrace.alerts.patterns.compiler import MISSING

from corrtrace.timestamps import parse_timestamp_s

log = logging.getLogger("corrtrace.alerts")
MAX_IDS_PER_PERIOD = 1000
PUT_METRIC_BATCH = 500


def event_time(event: Any) -> float | None:
    """The event's ``@timestamp`` as epoch seconds, if it has a valid one (read as the collector reads it)."""
    return parse_timestamp_s(event.get("@timestamp")) if isinstance(event, Mapping) else None


@dataclass
class AlertStats:
    matched: int = 0
    datapoints: int = 0
    dropped_values: int = 0  # non-numeric metric value or missing dimension: no datapoint (AWS: undocumented)
    jams: int = 0


@dataclass
class _AlertState:
    alert: Alert
    actions: list[Action]
    evaluator: AlarmEvaluator | None
    jam: JamDetector | None
    ids: dict[float, OrderedDict[str, None]] = field(default_factory=dict)
    notified: OrderedDict[str, None] = field(default_factory=OrderedDict)
    stats: AlertStats = field(default_factory=AlertStats)


class AlertEngine:
    """Evaluate alerts locally. ``actions``: a mapping from action type (``txmanager``, ``sns``, ``lambda``) to
    an ``Action``, used as each alert's file says; or a sequence of actions run for every alert."""

    def __init__(
        self,
        alerts: Sequence[Alert],
        actions: Mapping[str, Action] | Sequence[Action] = (),
        *,
        clock: Callable[[], float] = time.time,
        cloudwatch: Any = None,
        act_while_alarm: bool = True,
        state_file: str | Path | None = None,
    ) -> None:
        """``state_file``: where alarm states and the IDs already acted on survive a restart (None: memory only)."""
        self.clock = clock
        self.cloudwatch = cloudwatch
        self.act_while_alarm = act_while_alarm
        self._metric_buffer: list[tuple[str, dict[str, Any]]] = []
        self._states: list[_AlertState] = []
        for alert in alerts:
            chosen = self._actions_for(alert, actions)
            evaluator = AlarmEvaluator(alert.alarm_name, alert.alarm) if alert.alarm else None
            jam = JamDetector(alert.jam.threshold, alert.jam.window) if alert.jam else None
            self._states.append(_AlertState(alert, chosen, evaluator, jam))
        self._wants_parsed = any(s.alert.pattern.is_json for s in self._states)
        self._wants_raw = any(not s.alert.pattern.is_json for s in self._states)
        self._last_tick = float("-inf")
        self._state_file = AlarmStateFile(state_file) if state_file is not None else None
        self._restore()

    def _restore(self) -> None:
        if self._state_file is None:
            return
        saved = self._state_file.load()
        for st in self._states:
            item = saved.get(st.alert.alarm_name)
            if st.evaluator is not None and item is not None:
                st.evaluator.state = item.state
                st.notified.update((cid, None) for cid in item.notified)

    def _save(self) -> None:
        if self._state_file is not None:
            self._state_file.save(
                {st.alert.alarm_name: (st.evaluator.state, st.notified) for st in self._states if st.evaluator}
            )

    @staticmethod
    def _actions_for(alert: Alert, actions: Mapping[str, Action] | Sequence[Action]) -> list[Action]:
        if not isinstance(actions, Mapping):
            return list(actions)
        chosen: list[Action] = []
        for spec in alert.actions:
            action = actions.get(spec.type)
            if action is not None:
                chosen.append(cast(Action, _Targeted(action, spec.target)) if spec.target else action)
        return chosen

    @property
    def alerts(self) -> list[Alert]:
        return [s.alert for s in self._states]

    def state(self, alert_name: str) -> str | None:
        """The alarm state of ``alert_name`` (None for alerts without an alarm)."""
        for s in self._states:
            if s.alert.name == alert_name and s.evaluator:
                return s.evaluator.state
        return None

    def stats(self, alert_name: str) -> AlertStats:
        return next(s.stats for s in self._states if s.alert.name == alert_name)

    def feed(
        self,
        event: Mapping[str, Any] | None,
        raw_line: str,
        *,
        log_group: str | None = None,
        timestamp: float | None = None,
    ) -> list[str]:
        """Apply every alert to one log event; returns the names of the alerts whose pattern matched."""
        parsed: Any = event if event is not None else MISSING
        if parsed is MISSING and self._wants_parsed:
            try:
                parsed = orjson.loads(raw_line)
            except orjson.JSONDecodeError:
                parsed = MISSING
        ts = timestamp if timestamp is not None else (event_time(parsed) or self.clock())
        matched: list[str] = []
        for st in self._states:
            alert = st.alert
            if log_group is not None and alert.log_groups and log_group not in alert.log_groups:
                continue
            pattern = alert.pattern
            if pattern.is_json:
                hit = parsed is not MISSING and pattern.matches_parsed(parsed)
            else:
                hit = pattern.matches(raw_line)
            if hit:
                matched.append(alert.name)
                self._on_match(st, parsed, raw_line, ts)
            elif alert.metric and alert.metric.default is not None and st.evaluator:
                st.evaluator.add(alert.metric.default, ts)
                st.stats.datapoints += 1
                self._buffer(alert, alert.metric.default, {}, ts)
        return matched

    def feed_event(self, event: dict[str, Any]) -> list[str]:
        """A collector subscriber (``Pipeline(subscribers=[engine.feed_event])``): one parsed event dict.

        The raw line for text patterns is the original text of a non-JSON line (``log.original``, as
        ``corrtrace.logging.parse_line`` keeps it) or the event serialised again; alarms are evaluated at most
        once a second from here (``tick`` can also be called on a timer).
        """
        raw: str | None = None
        parsed: Mapping[str, Any] | None = event
        log_field = event.get("log")
        original = log_field.get("original") if isinstance(log_field, Mapping) else None
        if isinstance(original, str) and original == event.get("message"):  # a non-JSON line, wrapped
            raw, parsed = original, None
        if raw is None:
            raw = orjson.dumps(event).decode() if self._wants_raw else ""
        matched = self.feed(parsed, raw, timestamp=event_time(event))
        now = self.clock()
        if now - self._last_tick >= 1.0:
            self._last_tick = now
            self.tick(now)
        return matched

    def _on_match(self, st: _AlertState, parsed: Any, raw_line: str, ts: float) -> None:
        alert = st.alert
        st.stats.matched += 1
        cid = correlation_id_of(parsed if parsed is not MISSING else None, raw_line)
        if st.jam is not None and cid is not None:
            jam = st.jam.record(cid, ts)
            if jam is not None:
                st.stats.jams += 1
                self._fire(
                    st,
                    AlarmNotification(
                        alert.name,
                        alert.alarm_name,
                        ALARM,
                        OK,
                        f"correlation ID failed {jam.failures} times within {st.jam.window:g}s (stream jam)",
                        ts,
                        (cid,),
                        kind="stream-jam",
                    ),
                )
        if alert.metric is None or st.evaluator is None:
            return
        extracted = pattern_values(alert, raw_line, parsed)
        value = alert.metric_value(raw_line, parsed, extracted)
        dims = alert.dimensions(raw_line, parsed, extracted)
        if value is None or dims is None:
            st.stats.dropped_values += 1
            return
        self._buffer(alert, value, dims, ts)
        if alert.alarm and dict(alert.alarm.dimensions) != dims and alert.alarm.dimensions:
            return  # this datapoint belongs to another dimension value than the alarm watches
        st.evaluator.add(value, ts)
        st.stats.datapoints += 1
        if cid is not None:
            bucket = st.ids.setdefault(st.evaluator.period_start(ts), OrderedDict())
            if len(bucket) < MAX_IDS_PER_PERIOD:
                bucket[cid] = None

    def tick(self, now: float | None = None) -> list[Transition]:
        """Evaluate every alarm at ``now``; fire actions; flush metric datapoints. Returns the transitions."""
        now = self.clock() if now is None else now
        transitions: list[Transition] = []
        acted = False
        for st in self._states:
            if st.evaluator is None:
                continue
            transition = st.evaluator.evaluate(now)
            window = st.evaluator.evaluation_periods_at(now)
            if transition is not None:
                transitions.append(transition)
                self._log_transition(st.alert, transition)
                self._mirror_state(st.alert, transition)
            if st.evaluator.state == ALARM and (transition is not None or self.act_while_alarm):
                ids = self._new_ids(st, window)
                acted = acted or bool(ids)
                if ids or transition is not None:
                    self._fire(
                        st,
                        AlarmNotification(
                            st.alert.name,
                            st.alert.alarm_name,
                            ALARM,
                            transition.old_state if transition else ALARM,
                            transition.reason if transition else "still in ALARM: new matching events",
                            now,
                            tuple(ids),
                        ),
                    )
            elif transition is not None:
                self._fire(
                    st,
                    AlarmNotification(
                        st.alert.name,
                        st.alert.alarm_name,
                        transition.new_state,
                        transition.old_state,
                        transition.reason,
                        now,
                    ),
                )
            for start in [s for s in st.ids if s < window[0]]:
                del st.ids[start]
        if transitions or acted:
            self._save()
        self.flush_metrics()
        return transitions

    def _new_ids(self, st: _AlertState, window: Iterable[float]) -> list[str]:
        fresh: list[str] = []
        for start in window:
            for cid in st.ids.get(start, ()):
                if cid not in st.notified:
                    st.notified[cid] = None
                    fresh.append(cid)
        while len(st.notified) > 100_000:
            st.notified.popitem(last=False)
        return fresh

    def _fire(self, st: _AlertState, notification: AlarmNotification) -> None:
        if notification.kind == "stream-jam":
            log.warning(
                "stream jam on %s",
                st.alert.name,
                extra={
                    "event.dataset": "corrtrace.alerts",
                    "event.action": "stream-jam",
                    "labels.alarm_name": notification.alarm_name,
                    "labels.alarm_state": notification.state,
                    "labels.correlation_ids": ",".join(notification.correlation_ids),
                },
            )
        run_actions(st.actions, notification)

    @staticmethod
    def _log_transition(alert: Alert, transition: Transition) -> None:
        log.warning(
            "alarm %s: %s -> %s",
            transition.alarm_name,
            transition.old_state,
            transition.new_state,
            extra={
                "event.dataset": "corrtrace.alerts",
                "event.action": "alarm",
                "labels.alarm_name": transition.alarm_name,
                "labels.alarm_state": transition.new_state,
                "labels.alert": alert.name,
            },
        )

    def _mirror_state(self, alert: Alert, transition: Transition) -> None:
        if self.cloudwatch is None:
            return
        try:
            self.cloudwatch.set_alarm_state(
                AlarmName=transition.alarm_name, StateValue=transition.new_state, StateReason=transition.reason[:1023]
            )
        except Exception as exc:  # the deployed alarm may not exist; local evaluation goes on
            log.warning("cannot mirror alarm state of %s to CloudWatch: %s", alert.alarm_name, exc)

    def _buffer(self, alert: Alert, value: float, dims: Mapping[str, str], ts: float) -> None:
        if self.cloudwatch is None or alert.metric is None:
            return
        datum: dict[str, Any] = {
            "MetricName": alert.metric.name,
            "Timestamp": datetime.fromtimestamp(ts).astimezone(),
            "Value": value,
        }
        if dims:
            datum["Dimensions"] = [{"Name": k, "Value": v} for k, v in sorted(dims.items())]
        if alert.metric.unit:
            datum["Unit"] = alert.metric.unit
        self._metric_buffer.append((alert.metric.namespace, datum))

    def flush_metrics(self) -> int:
        """Send buffered datapoints with PutMetricData (grouped by namespace); returns how many were sent."""
        if self.cloudwatch is None or not self._metric_buffer:
            return 0
        pending, self._metric_buffer = self._metric_buffer, []
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in pending:
            by_namespace.setdefault(namespace, []).append(datum)
        sent = 0
        for namespace, data in by_namespace.items():
            for i in range(0, len(data), PUT_METRIC_BATCH):
                try:
                    self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + PUT_METRIC_BATCH])
                    sent += len(data[i : i + PUT_METRIC_BATCH])
                except Exception as exc:
                    log.warning("PutMetricData to %s failed: %s", namespace, exc)
        return sent


def pattern_values(alert: Alert, raw_line: str, parsed: Any) -> dict[str, str] | None:
    """Extracted ``$field`` values for space-delimited patterns (None for other kinds)."""
    if alert.pattern.kind != "delimited":
        return None
    return alert.pattern.extract(raw_line)


@dataclass
class _Targeted:
    """An action bound to one alert's ARN or URL."""

    action: Action
    target: str

    @property
    def type(self) -> str:
        return self.action.type

    def __call__(self, notification: AlarmNotification) -> None:
        from dataclasses import replace

        self.action(replace(notification, target=self.target))
