"""What the three dashboards share: uids, tag, datasource variables, the correlation id variable, links.

Log-event fields queried (README.md, "Fields queried"): ``correlation_id`` (keyword), ``service.name``,
``service.target.name``, ``event.dataset`` (``corrtrace.access`` | ``corrtrace.outbound`` |
``corrtrace.txmanager`` | ``corrtrace.alerts``), ``event.action``, ``event.outcome``, ``event.duration`` (ns),
``http.response.status_code``, ``log.level``, ``message``, ``@timestamp``.
"""

from __future__ import annotations

from corrtrace.dashboards import panels
from corrtrace.dashboards.settings import DashboardsSettings
from grafanalib import core

TAG = "corrtrace"
REQUEST_FLOW_UID = "corrtrace-request-flow"
SERVICE_HEALTH_UID = "corrtrace-service-health"
ALERTS_ROLLBACKS_UID = "corrtrace-alerts-rollbacks"

ES_VAR = "es_datasource"
CW_VAR = "cw_datasource"
ES = panels.ds("elasticsearch", f"${{{ES_VAR}}}")
CW = panels.ds("cloudwatch", f"${{{CW_VAR}}}")

# Quoted, so a pasted id is matched as-is on the keyword field; an empty box matches nothing.
BY_ID = 'correlation_id:"${correlation_id}"'


def variables(settings: DashboardsSettings, *extra: panels.Variable) -> core.Templating:
    return core.Templating(
        list=[
            panels.datasource_variable(ES_VAR, "elasticsearch", settings.es_datasource_uid, "Elasticsearch"),
            panels.datasource_variable(CW_VAR, "cloudwatch", settings.cw_datasource_uid, "CloudWatch"),
            panels.textbox_variable(
                "correlation_id",
                "Correlation ID",
                description="The X-Correlation-ID of one request; carried by the links between dashboards.",
            ),
            *extra,
        ]
    )


def dashboard(
    title: str,
    uid: str,
    description: str,
    templating: core.Templating,
    dashboard_panels: list[core.Panel],
    *,
    refresh: str = "",
) -> core.Dashboard:
    return core.Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=[TAG],
        timezone="utc",
        refresh=refresh,
        schemaVersion=panels.SCHEMA_VERSION,
        templating=templating,
        time=core.Time("now-6h", "now"),
        links=panels.dashboard_links(TAG),
        panels=dashboard_panels,
        graphTooltip=core.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    )


def grid(x: int, y: int, w: int, h: int) -> core.GridPos:
    return core.GridPos(h=h, w=w, x=x, y=y)


def keep_and_rename(keep: list[str], rename: dict[str, str]) -> list[dict[str, object]]:
    """Transformations picking ``keep`` (in that order) from a raw_data frame and renaming some of them."""
    return [
        {"id": "filterFieldsByName", "options": {"include": {"names": keep}}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {},
                "indexByName": {name: i for i, name in enumerate(keep)},
                "renameByName": rename,
            },
        },
    ]


def sort_by(field: str, desc: bool = False) -> dict[str, object]:
    """Grafana's ``sortBy`` transformation (raw_data arrives newest first)."""
    return {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": field, "desc": desc}]}}
