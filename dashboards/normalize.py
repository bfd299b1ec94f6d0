"""Turn a grafanalib ``Dashboard`` into current dashboard JSON: no nulls, no legacy keys.

Raw grafanalib 0.7.1 output fails the current schemas in 36 places (``rows``, ``style``, ``hideControls``,
``sharedCrosshair``, panel ``span``/``height``/``minSpan``/``error``, ``gnetId: null``, ...). The panel and
query subclasses in ``panels.py`` emit the current shape; this removes what the base classes still add.
"""

from __future__ import annotations

import json
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

DASHBOARD_LEGACY = ("rows", "style", "hideControls", "sharedCrosshair", "__inputs")
PANEL_LEGACY = ("span", "height", "minSpan", "error", "editable", "thresholds", "thresholdType", "maxDataPoints")


def _drop_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(v) for v in node if v is not None]
    return node


def _panel(panel: dict[str, Any]) -> dict[str, Any]:
    for key in PANEL_LEGACY:
        panel.pop(key, None)
    if not panel.get("repeat"):
        for key in ("repeat", "repeatDirection", "maxPerRow"):
            panel.pop(key, None)
    if not panel.get("description"):
        panel.pop("description", None)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    thresholds = defaults.get("thresholds")
    if isinstance(thresholds, dict) and not thresholds.get("steps"):
        defaults.pop("thresholds")
    if defaults.get("mappings") == []:
        defaults.pop("mappings")
    if isinstance(panel.get("panels"), list):
        panel["panels"] = [_panel(p) for p in panel["panels"]]
    return panel


def to_json(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as a plain dict ready for ``json.dumps``, the Grafana API or file provisioning."""
    raw: dict[str, Any] = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    data: dict[str, Any] = _drop_nulls(raw)
    for key in DASHBOARD_LEGACY:
        data.pop(key, None)
    data.pop("id", None)  # instance-local; the uid identifies the dashboard across Grafanas
    picker = data.get("timepicker")
    if isinstance(picker, dict):
        picker.pop("time_options", None)
    data["panels"] = [_panel(p) for p in data.get("panels", [])]
    return data
