"""Service health: per service request rate, error rate and p95 latency from Elasticsearch aggregations over
the middleware's access lines, recent failed requests (each linked to its flow), and the metric-filter
metrics CloudWatch holds for the alerts.
"""

from __future__ import annotations

from typing import Any

from corrtrace.dashboards import common, panels
from corrtrace.dashboards.normalize import to_json
from corrtrace.dashboards.settings import DashboardsSettings

SERVICE_VAR = panels.variable(
    name="service",
    label="Service",
    type="query",
    query='{"find": "terms", "field": "service.name"}',
    dataSource=common.ES,
    multi=True,
    includeAll=True,
    allValue="*",
    refresh=2,
)
# ${service:lucene}: one value -> escaped term, several -> ("a" OR "b"); the custom all value "*" is kept raw.
Q_ACCESS = 'event.dataset:"corrtrace.access" AND service.name:${service:lucene}'
Q_FAILED = f"{Q_ACCESS} AND http.response.status_code:>=500"
# Error rate = 5xx count / request count per service and interval, as a server-side math expression: no
# Elasticsearch script needed (a node without the painless module runs it too). Services without a 5xx have
# no error series (the math joins the two queries on the service label).
ERROR_RATE = "$A / $B"
FAILED_FIELDS = [
    "@timestamp",
    "service.name",
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "correlation_id",
]


def _per_service(
    metric: Any, *, over_time: bool, query: str = Q_ACCESS, ref: str = "A", hide: bool = False
) -> panels.EsTarget:
    buckets: list[Any] = [panels.TermsBucket(field="service.name", id="2", size="50")]
    if over_time:
        buckets.append(panels.DateHistogramBucket(id="3"))
    return panels.EsTarget(
        refId=ref, query=query, metricAggs=[metric], bucketAggs=buckets, datasource=common.ES, hide=hide
    )


def p95_metric(metric_id: str = "1") -> panels.PercentilesMetric:
    return panels.PercentilesMetric(field="event.duration", percents=["95"], id=metric_id)


def metric_filter_search(settings: DashboardsSettings) -> str:
    """Every metric the alert metric filters publish in the namespace, whatever the alert file names them."""
    return f"SEARCH('Namespace=\"{settings.metric_namespace}\"', 'Sum', 300)"


def metric_filter_panel(settings: DashboardsSettings, title: str, grid_pos: Any, panel_id: int) -> Any:
    """The CloudWatch bar chart of the metric-filter metrics: this dashboard shows it, and so does the alerts one."""
    return panels.TimeSeriesPanel(
        title=f"{title} (CloudWatch namespace {settings.metric_namespace})",
        dataSource=common.CW,
        targets=[
            panels.CloudwatchMetrics(
                refId="A",
                id="metricfilters",
                region=settings.cw_region,
                namespace=settings.metric_namespace,
                expression=metric_filter_search(settings),
                metricEditorMode=1,
                metricQueryType=0,
                statistic="Sum",
                period="300",
                datasource=common.CW,
            )
        ],
        drawStyle="bars",
        fillOpacity=60,
        gridPos=grid_pos,
        id=panel_id,
    )


def build(settings: DashboardsSettings | None = None) -> dict[str, Any]:
    settings = settings or DashboardsSettings()
    es, grid = common.ES, common.grid
    rate = panels.TimeSeriesPanel(
        title="Requests per interval",
        dataSource=es,
        targets=[_per_service(panels.CountMetric(), over_time=True)],
        drawStyle="bars",
        fillOpacity=60,
        gridPos=grid(0, 0, 8, 8),
        id=1,
    )
    errors = panels.TimeSeriesPanel(
        title="Error rate (share of 5xx responses)",
        dataSource=es,
        targets=[
            _per_service(panels.CountMetric(), over_time=True, query=Q_FAILED, ref="A", hide=True),
            _per_service(panels.CountMetric(), over_time=True, query=Q_ACCESS, ref="B", hide=True),
            panels.MathExpression(refId="C", expression=ERROR_RATE),
        ],
        unit="percentunit",
        gridPos=grid(8, 0, 8, 8),
        id=2,
    )
    latency = panels.TimeSeriesPanel(
        title="p95 latency",
        dataSource=es,
        targets=[_per_service(p95_metric(), over_time=True)],
        unit="ns",
        gridPos=grid(16, 0, 8, 8),
        id=3,
    )
    summary = panels.TablePanel(
        title="Per service over the time range (requests, p95, 5xx)",
        dataSource=es,
        targets=[
            panels.EsTarget(
                refId="A",
                query=Q_ACCESS,
                datasource=es,
                metricAggs=[panels.CountMetric(id="1"), p95_metric("3")],
                bucketAggs=[panels.TermsBucket(field="service.name", id="4", size="50")],
            ),
            panels.EsTarget(
                refId="B",
                query=Q_FAILED,
                datasource=es,
                metricAggs=[panels.CountMetric(id="1")],
                bucketAggs=[panels.TermsBucket(field="service.name", id="4", size="50")],
            ),
        ],
        transformations=[{"id": "joinByField", "options": {"byField": "service.name", "mode": "outer"}}],
        gridPos=grid(0, 8, 12, 9),
        id=4,
    )
    failed = panels.TablePanel(
        title="Recent failed requests (click a row for its flow)",
        dataSource=es,
        targets=[
            panels.EsTarget(refId="A", query=Q_FAILED, metricAggs=[panels.RawDataMetric(size="100")], datasource=es)
        ],
        transformations=common.keep_and_rename(FAILED_FIELDS, {}),
        dataLinks=[panels.request_flow_link(common.REQUEST_FLOW_UID)],
        gridPos=grid(12, 8, 12, 9),
        id=5,
    )
    cw_metrics = metric_filter_panel(settings, "Metric-filter metrics", grid(0, 17, 24, 8), 6)
    board = common.dashboard(
        "corrtrace / Service health",
        common.SERVICE_HEALTH_UID,
        "Request rate, error rate and p95 latency per service; metric-filter metrics from CloudWatch.",
        common.variables(settings, SERVICE_VAR),
        [rate, errors, latency, summary, failed, cw_metrics],
        refresh="1m",
    )
    return to_json(board)
