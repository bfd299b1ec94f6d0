"""Build every dashboard and write them with the provisioning files Grafana reads at start.

Layout of the output folder (copy ``provisioning/`` into Grafana's provisioning folder and the JSON files
into the provider's ``options.path``)::

    DIR/dashboards/<uid>.json
    DIR/provisioning/dashboards/corrtrace.yaml
    DIR/provisioning/datasources/corrtrace.yaml
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corrtrace.dashboards import alerts_rollbacks, provisioning, request_flow, service_health
from corrtrace.dashboards.settings import DashboardsSettings

BUILDERS: tuple[Callable[[DashboardsSettings | None], dict[str, Any]], ...] = (
    request_flow.build,
    service_health.build,
    alerts_rollbacks.build,
)


def build_all(settings: DashboardsSettings | None = None) -> list[dict[str, Any]]:
    """The three dashboards as JSON-ready dicts, in a fixed order."""
    settings = settings or DashboardsSettings()
    return [builder(settings) for builder in BUILDERS]


def dumps(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(out: str | Path, settings: DashboardsSettings | None = None) -> list[Path]:
    """Write the dashboards and provisioning files under ``out``; returns the paths written."""
    settings = settings or DashboardsSettings()
    root = Path(out)
    written: list[Path] = []
    boards = root / "dashboards"
    boards.mkdir(parents=True, exist_ok=True)
    for dashboard in build_all(settings):
        path = boards / f"{dashboard['uid']}.json"
        path.write_text(dumps(dashboard), encoding="utf-8")
        written.append(path)
    for kind, document in (
        ("dashboards", provisioning.dashboards_provider(settings)),
        ("datasources", provisioning.datasources(settings)),
    ):
        folder = root / "provisioning" / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "corrtrace.yaml"
        path.write_text(provisioning.to_yaml(document), encoding="utf-8")
        written.append(path)
    return written
