"""What an alarm does: call the transaction manager, publish to SNS, invoke a Lambda, or any callable.

Every action implements the ``Action`` protocol, so the engine and the handler never depend on a transport.
An action's own failure is logged (once per call, correlation IDs included) and never stops the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from corrtrace.alerts.definitions import AlarmState

from corrtrace.ids import safe_excerpt

log = logging.getLogger("corrtrace.alerts")


@dataclass(frozen=True)
class AlarmNotification:
    """An alarm transition (or a jam) with the correlation IDs of the events that matched."""

    alert: str
    alarm_name: str
    state: AlarmState
    previous_state: AlarmState
    reason: str
    timestamp: float
    correlation_ids: tuple[str, ...] = ()
    target: str = ""
    kind: str = "alarm"  # "alarm" or "stream-jam"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Action(Protocol):
    """Something to do when an alarm changes state."""

    type: str

    def __call__(self, notification: AlarmNotification) -> None: ...


class RollbackClient(Protocol):
    """The part of ``corrtrace.txmanager.TxManagerClient`` the alerts use."""

    def rollback(self, correlation_id: str, *, reason: str | None = None, source: str | None = None) -> Any: ...


@dataclass
class TxManagerAction:
    """Ask the transaction manager to roll back each correlation ID of an ALARM notification."""

    client: RollbackClient
    type: str = "txmanager"
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str, secret: str) -> TxManagerAction:
        from corrtrace.txmanager import TxManagerClient

        return cls(TxManagerClient(url, secret))

    def __call__(self, notification: AlarmNotification) -> None:
        if notification.state != AlarmState.ALARM:
            return
        reason = f"{notification.kind}: {notification.reason}"[:500]
        for correlation_id in notification.correlation_ids:
            try:
                self.results[correlation_id] = self.client.rollback(
                    correlation_id, reason=reason, source=notification.alarm_name
                )
            except Exception as exc:
                self.results[correlation_id] = exc
                log.error(
                    "rollback request failed for %s: %s",
                    safe_excerpt(correlation_id, 64),
                    exc,
                    extra={"event.action": "rollback-request", "event.outcome": "failure"},
                )


@dataclass
class SnsAction:
    """Publish the notification as JSON to the alert's SNS topic."""

    client: Any
    topic_arn: str = ""
    type: str = "sns"

    def __call__(self, notification: AlarmNotification) -> None:
        if notification.state != AlarmState.ALARM:  # deployed alarms carry these ARNs as AlarmActions only
            return
        topic = notification.target or self.topic_arn
        self.client.publish(
            TopicArn=topic,
            Subject=f"{notification.state}: {notification.alarm_name}"[:100],
            Message=json.dumps(notification.to_dict()),
        )


@dataclass
class LambdaAction:
    """Invoke a Lambda asynchronously with a CloudWatch-alarm-shaped event plus the correlation IDs."""

    client: Any
    function_arn: str = ""
    type: str = "lambda"
    last_response: Any = None

    @staticmethod
    def payload(notification: AlarmNotification) -> dict[str, Any]:
        """The invoke payload: the shape of a CloudWatch alarm event plus ``correlationIds``."""
        return {
            "source": "corrtrace.alerts",
            "alarmData": {
                "alarmName": notification.alarm_name,
                "state": {"value": notification.state, "reason": notification.reason},
                "previousState": {"value": notification.previous_state},
            },
            "correlationIds": list(notification.correlation_ids),
        }

    def __call__(self, notification: AlarmNotification) -> None:
        if notification.state != AlarmState.ALARM:
            return
        self.last_response = self.client.invoke(
            FunctionName=notification.target or self.function_arn,
            InvocationType="Event",
            Payload=json.dumps(self.payload(notification)).encode(),
        )


@dataclass
class CallbackAction:
    """Call a Python function (tests, custom integrations)."""

    fn: Callable[[AlarmNotification], Any]
    type: str = "callback"

    def __call__(self, notification: AlarmNotification) -> None:
        self.fn(notification)


def run_actions(actions: list[Action] | tuple[Action, ...], notification: AlarmNotification) -> None:
    """Run every action; one failing action is logged and the rest still run."""
    for action in actions:
        try:
            action(notification)
        except Exception as exc:
            log.error(
                "alarm action %s failed for %s: %s",
                action.type,
                notification.alarm_name,
                exc,
                extra={"event.action": "alarm-action", "event.outcome": "failure"},
            )
