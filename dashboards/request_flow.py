"""Request flow: everything one correlation id did, across services.

Logs (every line, oldest first), a table of hops in time order, a Node Graph of service-to-service calls
(edges from the middleware's ``corrtrace.outbound`` lines: ``service.name`` -> ``service.target.name``),
time per service, the transaction manager's rollback/commit outcome, and the same lines from CloudWatch Logs.
"""

from __future__ import annotations

from typing import Any

from corrtrace.dashboards import common, panels
from corrtrace.dashboards.normalize import to_json
from corrtrace.dashboards.settings import DashboardsSettings
from grafanalib.core import TableSortByField

Q_LINES = common.BY_ID
Q_OUTBOUND = f'{common.BY_ID} AND event.dataset:"corrtrace.outbound"'
Q_ACCESS = f'{common.BY_ID} AND event.dataset:"corrtrace.access"'
Q_TXMANAGER = f'{common.BY_ID} AND event.dataset:"corrtrace.txmanager"'

HOP_FIELDS = [
    "@timestamp",
    "service.name",
    "log.level",
    "message",
    "http.response.status_code",
    "event.duration",
    "event.dataset",
    "correlation_id",
]
HOP_RENAME = {
    "service.name": "service",
    "log.level": "level",
    "http.response.status_code": "status",
    "event.duration": "duration_ns",
    "event.dataset": "dataset",
}
EDGE_FIELDS = ["_id", "service.name", "service.target.name", "event.duration", "event.action"]
EDGE_RENAME = {
    "_id": "id",
    "service.name": "source",
    "service.target.name": "target",
    "event.duration": "mainstat",
    "event.action": "secondarystat",
}
ROLLBACK_FIELDS = ["@timestamp", "event.action", "service.target.name", "event.outcome", "message"]
ROLLBACK_RENAME = {"event.action": "action", "service.target.name": "participant", "event.outcome": "outcome"}


def cloudwatch_insights(settings: DashboardsSettings) -> str:
    return (
        "fields @timestamp, @message, service.name, log.level, http.response.status_code"
        " | filter correlation_id = '${correlation_id}'"
        " | sort @timestamp asc | limit 1000"
    )


def build(settings: DashboardsSettings | None = None) -> dict[str, Any]:
    settings = settings or DashboardsSettings()
    es, grid = common.ES, common.grid
    lines = panels.LogsPanel(
        title="Every log line of this request (Elasticsearch)",
        dataSource=es,
        targets=[panels.EsTarget(refId="A", query=Q_LINES, metricAggs=[panels.LogsMetric()], datasource=es)],
        showTime=True,
        wrapLogMessages=True,
        sortOrder="Ascending",
        enableLogDetails=True,
        showLabels=False,
        gridPos=grid(0, 0, 24, 10),
        id=1,
        description="Ordered oldest first. Log details carry a link to this flow for any line's correlation_id.",
    )
    hops = panels.TablePanel(
        title="Hops in time order",
        dataSource=es,
        targets=[panels.EsTarget(refId="A", query=Q_LINES, metricAggs=[panels.RawDataMetric()], datasource=es)],
        transformations=[*common.keep_and_rename(HOP_FIELDS, HOP_RENAME), common.sort_by("@timestamp")],
        sortBy=[TableSortByField(displayName="@timestamp", desc=False)],
        gridPos=grid(0, 10, 24, 10),
        id=2,
    )
    calls = panels.NodeGraph(
        title="Service calls of this request",
        dataSource=es,
        targets=[panels.EsTarget(refId="edges", query=Q_OUTBOUND, metricAggs=[panels.RawDataMetric()], datasource=es)],
        transformations=common.keep_and_rename(EDGE_FIELDS, EDGE_RENAME),
        mainStatUnit="ns",
        gridPos=grid(0, 20, 12, 12),
        id=3,
        description="One edge per outbound call (service.name -> service.target.name), duration as main stat.",
    )
    per_service = panels.BarChartPanel(
        title="Time per service",
        dataSource=es,
        targets=[
            panels.EsTarget(
                refId="A",
                query=Q_ACCESS,
                datasource=es,
                metricAggs=[panels.FieldMetric(type="sum", id="1", field="event.duration")],
                bucketAggs=[panels.TermsBucket(field="service.name", id="2", size="50")],
            )
        ],
        xField="service.name",
        unit="ns",
        gridPos=grid(12, 20, 12, 12),
        id=4,
        description="Sum of the access-line durations each service logged for this request (includes callees).",
    )
    rollback = panels.TablePanel(
        title="Rollback / commit outcome",
        dataSource=es,
        targets=[panels.EsTarget(refId="A", query=Q_TXMANAGER, metricAggs=[panels.RawDataMetric()], datasource=es)],
        transformations=[*common.keep_and_rename(ROLLBACK_FIELDS, ROLLBACK_RENAME), common.sort_by("@timestamp")],
        gridPos=grid(0, 32, 24, 8),
        id=5,
    )
    cw_lines = panels.LogsPanel(
        title="The same request in CloudWatch Logs",
        dataSource=common.CW,
        targets=[
            panels.CloudwatchLogsInsights(
                refId="A",
                expression=cloudwatch_insights(settings),
                region=settings.cw_region,
                logGroups=[
                    panels.log_group(g, settings.cw_region, settings.cw_account_id) for g in settings.cw_log_groups
                ],
                datasource=common.CW,
            )
        ],
        showTime=True,
        wrapLogMessages=True,
        sortOrder="Ascending",
        enableLogDetails=True,
        gridPos=grid(0, 40, 24, 10),
        id=6,
    )
    board = common.dashboard(
        "corrtrace / Request flow",
        common.REQUEST_FLOW_UID,
        "Every line, hop, call and rollback of one request, by correlation ID.",
        common.variables(settings),
        [lines, hops, calls, per_service, rollback, cw_lines],
    )
    return to_json(board)
