"""The demo's alert-engine process: corrtrace.alerts' engine evaluating alerts.yaml on the services' log
lines as they are written (what CloudWatch's metric filters and alarms do with a log group).

The engine calls the transaction manager for the correlation IDs of matching events (code errors, a stream
jam); every alarm that fires is also kept, and served on ``/status`` so the runner can report it. Its own
lines (alarm transitions, ``event.dataset`` = ``corrtrace.alerts``) go to ``alerts.log``, which the collector
ships like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from corrtrace.demo import wiring
from corrtrace.demo.runtime import Runtime
from corrtrace.demo.settings import DemoSettings
from corrtrace.demo.status import serve_status

log = logging.getLogger("demo.alerts")
TICK_SECONDS = 0.2
# the logs the alerts watch: the services and the manager (not the collector's or the engine's own)
WATCHED = ("ui", "catalog", "checkout", "payment", "shipping", "aggregation", "txmanager")


def demo_alerts(settings: DemoSettings) -> list[Any]:
    """The alert file with the demo's alarm period and latency threshold filled in."""
    from corrtrace.alerts import parse_alerts

    data = yaml.safe_load(resources.files("corrtrace.demo").joinpath("alerts.yaml").read_text(encoding="utf-8"))
    for item in data["alerts"]:
        alarm = item.get("alarm")
        if alarm:
            alarm["period"] = settings.alarm_period_seconds
        if item["name"] == "payment-latency":
            alarm["threshold"] = settings.latency_threshold_ms * 1_000_000
    return list(parse_alerts(data, "corrtrace/demo/alerts.yaml"))


class RecordingAlerts:
    """The alert engine plus a record of what fired (alarms going to ALARM, jams) for ``/status``."""

    def __init__(self, engine_factory: Any, actions: dict[str, Any]) -> None:
        from corrtrace.alerts import CallbackAction

        self._fired: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        recorder = CallbackAction(self._record)
        wrapped = {name: _Both(action, recorder) for name, action in actions.items()}
        self.engine = engine_factory(wrapped)

    def _record(self, notification: Any) -> None:
        if notification.state == "ALARM":
            with self._lock:
                self._fired.append(notification.to_dict())

    def feed(self, event: dict[str, Any], raw_line: str) -> None:
        self.engine.feed(event, raw_line)

    def tick(self, now: float) -> None:
        for transition in self.engine.tick(now):
            if transition.new_state == "ALARM" and not self._acted(transition.alarm_name, now):
                with self._lock:
                    self._fired.append(
                        {
                            "alarm_name": transition.alarm_name,
                            "state": "ALARM",
                            "kind": "alarm",
                            "reason": transition.reason,
                            "timestamp": now,
                            "correlation_ids": [],
                        }
                    )

    def _acted(self, alarm_name: str, now: float) -> bool:
        with self._lock:
            return any(f["alarm_name"] == alarm_name and f["timestamp"] == now for f in self._fired)

    def fired(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f, correlation_ids=list(f.get("correlation_ids", []))) for f in self._fired]


class _Both:
    """Run the real action, then the recorder (an action type maps to one action in the engine)."""

    def __init__(self, action: Any, recorder: Any) -> None:
        self.type = action.type
        self.action = action
        self.recorder = recorder

    def __call__(self, notification: Any) -> None:
        try:
            self.action(notification)
        finally:
            self.recorder(notification)


def build(rt: Runtime) -> RecordingAlerts:
    from corrtrace.alerts import AlertEngine, TxManagerAction

    alerts = demo_alerts(rt.mesh.demo())
    # the alarm's HTTP call waits out a manager restart (the demo's --manager-outage)
    manager = TxManagerAction(wiring.manager_client(rt.mesh.url("txmanager"), rt.secret, patient=True))
    state_file = Path(rt.mesh.workdir) / "db" / "alerts-state.json"  # a restarted engine keeps its alarm states
    return RecordingAlerts(
        lambda actions: AlertEngine(alerts, actions, clock=time.time, state_file=state_file), {"txmanager": manager}
    )


def serve(rt: Runtime, stop: threading.Event) -> None:
    """Follow the watched logs, feed every line to the engine, evaluate the alarms every 0.2 s."""
    from corrtrace.alerts.tail import follow

    alerts = build(rt)
    lock = threading.Lock()  # fed by the follower thread, ticked by this one
    seen = [0]

    def on_line(raw: str) -> None:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            event = None
        with lock:
            seen[0] += 1
            alerts.feed(event if isinstance(event, dict) else None, raw)  # type: ignore[arg-type]

    server = serve_status(
        rt.mesh.ports["alerts"],
        lambda: {"service": "alerts", "ok": True, "lines": seen[0], "alerts": alerts.fired()},
    )
    paths = [str(rt.mesh.log_path(name)) for name in WATCHED]
    follower = threading.Thread(target=follow, args=(paths, on_line, stop), kwargs={"interval": 0.05}, daemon=True)
    follower.start()
    try:
        while not stop.is_set():
            try:
                with lock:
                    alerts.tick(time.time())
            except Exception:
                log.exception("alert evaluation failed; going on", extra={"event.action": "alarm-tick"})
            stop.wait(TICK_SECONDS)
    finally:
        server.shutdown()
        follower.join(timeout=2)
