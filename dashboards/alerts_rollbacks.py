"""Alerts and rollbacks: alarm states over time (the alert engine's ``corrtrace.alerts`` events), the
metric-filter counts CloudWatch holds, rollbacks by outcome from the transaction manager's
``corrtrace.txmanager`` events, stream jams, and the recent alarm events linked to their request flows.
"""

from __future__ import annotations

from typing import Any

from corrtrace.dashboards import common, panels
from corrtrace.dashboards.normalize import to_json
from corrtrace.dashboards.service_health import metric_filter_panel
from corrtrace.dashboards.settings import DashboardsSettings

Q_ALARMS = 'event.dataset:"corrtrace.alerts" AND event.action:"alarm"'
Q_ROLLBACKS = 'event.dataset:"corrtrace.txmanager" AND event.action:"rollback"'
Q_JAMS = 'event.dataset:"corrtrace.alerts" AND (event.action:"stream-jam" OR labels.alarm_name:"stream-jam")'
Q_ALERT_EVENTS = 'event.dataset:"corrtrace.alerts"'
STATE_FIELDS = ["@timestamp", "labels.alarm_name", "labels.alarm_state"]
EVENT_FIELDS = ["@timestamp", "labels.alarm_name", "labels.alarm_state", "event.action", "correlation_id", "message"]


def build(settings: DashboardsSettings | None = None) -> dict[str, Any]:
    settings = settings or DashboardsSettings()
    es, grid = common.ES, common.grid
    states = panels.StateTimelinePanel(
        title="Alarm states",
        dataSource=es,
        targets=[
            panels.EsTarget(refId="A", query=Q_ALARMS, metricAggs=[panels.RawDataMetric(size="1000")], datasource=es)
        ],
        transformations=[
            *common.keep_and_rename(STATE_FIELDS, {}),
            common.sort_by("@timestamp"),
            {"id": "partitionByValues", "options": {"fields": ["labels.alarm_name"], "keepFields": False}},
        ],
        gridPos=grid(0, 0, 24, 8),
        id=1,
        description="One row per alarm: OK / ALARM / INSUFFICIENT_DATA as the alert engine evaluated them.",
    )
    counts = metric_filter_panel(settings, "Metric-filter counts", grid(0, 8, 12, 8), 2)
    rollbacks = panels.TimeSeriesPanel(
        title="Rollbacks by outcome",
        dataSource=es,
        targets=[
            panels.EsTarget(
                refId="A",
                query=Q_ROLLBACKS,
                datasource=es,
                metricAggs=[panels.CountMetric()],
                bucketAggs=[
                    panels.TermsBucket(field="event.outcome", id="2", size="10"),
                    panels.DateHistogramBucket(id="3"),
                ],
            )
        ],
        drawStyle="bars",
        fillOpacity=60,
        gridPos=grid(12, 8, 12, 8),
        id=3,
    )
    outcomes = panels.BarChartPanel(
        title="Rollbacks by outcome over the time range",
        dataSource=es,
        targets=[
            panels.EsTarget(
                refId="A",
                query=Q_ROLLBACKS,
                datasource=es,
                metricAggs=[panels.CountMetric()],
                bucketAggs=[panels.TermsBucket(field="event.outcome", id="2", size="10")],
            )
        ],
        xField="event.outcome",
        gridPos=grid(0, 16, 12, 8),
        id=4,
    )
    jams = panels.TimeSeriesPanel(
        title="Stream jams",
        dataSource=es,
        targets=[
            panels.EsTarget(
                refId="A",
                query=Q_JAMS,
                datasource=es,
                metricAggs=[panels.CountMetric()],
                bucketAggs=[panels.DateHistogramBucket(id="2")],
            )
        ],
        drawStyle="bars",
        fillOpacity=80,
        gridPos=grid(12, 16, 12, 8),
        id=5,
        description="A poison record failing the same correlation ID again and again blocks its shard.",
    )
    events = panels.TablePanel(
        title="Recent alarm and jam events (click a row for its flow)",
        dataSource=es,
        targets=[
            panels.EsTarget(
                refId="A", query=Q_ALERT_EVENTS, metricAggs=[panels.RawDataMetric(size="200")], datasource=es
            )
        ],
        transformations=common.keep_and_rename(EVENT_FIELDS, {}),
        dataLinks=[panels.request_flow_link(common.REQUEST_FLOW_UID)],
        gridPos=grid(0, 24, 24, 8),
        id=6,
    )
    board = common.dashboard(
        "corrtrace / Alerts and rollbacks",
        common.ALERTS_ROLLBACKS_UID,
        "Alarm states, metric-filter counts, rollbacks by outcome and stream jams.",
        common.variables(settings),
        [states, counts, rollbacks, outcomes, jams, events],
        refresh="1m",
    )
    return to_json(board)
