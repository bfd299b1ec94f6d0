"""Local alarm state on disk, so a restarted engine does not fire a second ALARM for a breach it already acted on.

CloudWatch keeps an alarm's state across evaluations; a local engine that forgot it would start each alarm in
INSUFFICIENT_DATA and fire ALARM again, rolling back the same requests twice. The file holds, per alarm, its
state and the last correlation IDs its actions were given (alerts/README.md, "Operating it").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from corrtrace.alerts.definitions import AlarmState

log = logging.getLogger("corrtrace.alerts")
FORMAT_VERSION = 1
KEEP_IDS = 1000  # per alarm: enough to cover the evaluation range of any alarm the engine runs


@dataclass(frozen=True)
class SavedAlarm:
    state: AlarmState
    notified: tuple[str, ...] = ()


class AlarmStateFile:
    """``load()`` what the last run saved; ``save()`` atomically (a temporary file, then a rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, SavedAlarm]:
        """The saved alarms; an unreadable file is reported in one line and treated as empty (never fatal)."""
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("alarm state file %s is unreadable (%s): starting with no saved state", self.path, exc)
            return {}
        alarms = raw.get("alarms") if isinstance(raw, dict) and raw.get("version") == FORMAT_VERSION else None
        if not isinstance(alarms, dict):
            log.warning("alarm state file %s has an unknown shape: starting with no saved state", self.path)
            return {}
        out: dict[str, SavedAlarm] = {}
        for name, item in alarms.items():
            if isinstance(item, dict) and item.get("state") in set(AlarmState):
                ids = item.get("notified")
                notified = tuple(str(i) for i in ids[-KEEP_IDS:]) if isinstance(ids, list) else ()
                out[str(name)] = SavedAlarm(AlarmState(item["state"]), notified)
        return out

    def save(self, alarms: Mapping[str, tuple[AlarmState, Iterable[str]]]) -> None:
        """Write ``{alarm name: (state, notified IDs oldest first)}``; a failed write is logged, not raised."""
        saved = {name: {"state": state, "notified": list(ids)[-KEEP_IDS:]} for name, (state, ids) in alarms.items()}
        body = {"version": FORMAT_VERSION, "alarms": saved}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(orjson.dumps(body))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save the alarm state to %s (%s): a restart may repeat an ALARM", self.path, exc)
