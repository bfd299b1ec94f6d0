"""grafanalib 0.7.1 subclasses for what it lacks or emits in a legacy shape.

grafanalib has no Node Graph panel, no Elasticsearch ``logs``/``raw_data`` metrics, CloudWatch targets without
``queryMode``/``logGroups``, a Table with Grafana 7 keys and panel options missing keys the current schemas
require. Each class here emits the current shape; ``normalize.py`` removes what remains (nulls, legacy keys).
"""

from __future__ import annotations

from typing import Any

import attr
from grafanalib import cloudwatch, core, elasticsearch

# Grafana 12 (the line the vendored schemas were cut for) migrates anything older on load.
SCHEMA_VERSION = 42
NODE_GRAPH_TYPE = "nodeGraph"  # the real id: "nodegraph" is silently unknown to Grafana


def ds(kind: str, uid: str) -> dict[str, str]:
    """A datasource reference: always the ``{"type", "uid"}`` object, never a legacy name string."""
    return {"type": kind, "uid": uid}


# ---------------------------------------------------------------- Elasticsearch metrics and bucket aggregations
# Grafana stores every setting as a string ("500", "0"); its backend converts them.


@attr.s(auto_attribs=True)
class LogsMetric:
    """The ``logs`` metric: one row per document, for the Logs panel (grafanalib has none)."""

    id: str = "1"
    limit: str = "500"

    def to_json_data(self) -> dict[str, Any]:
        return {"type": "logs", "id": self.id, "settings": {"limit": self.limit}}


@attr.s(auto_attribs=True)
class RawDataMetric:
    """The ``raw_data`` metric: documents as a table frame, for Table and Node Graph panels."""

    id: str = "1"
    size: str = "500"

    def to_json_data(self) -> dict[str, Any]:
        return {"type": "raw_data", "id": self.id, "settings": {"size": self.size}}


@attr.s(auto_attribs=True)
class CountMetric:
    """``count`` without grafanalib's stray ``field: "select field"``."""

    id: str = "1"

    def to_json_data(self) -> dict[str, Any]:
        return {"type": "count", "id": self.id}


@attr.s(auto_attribs=True)
class FieldMetric:
    """``avg`` / ``sum`` / ``max`` / ``min`` on a field, or on an inline painless script (no field)."""

    type: str
    id: str
    field: str = ""
    script: str = ""

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "id": self.id}
        if self.field:
            out["field"] = self.field
        if self.script:
            out["settings"] = {"script": self.script}
        return out


@attr.s(auto_attribs=True)
class PercentilesMetric:
    """``percentiles`` with string percents, as Grafana's editor stores them."""

    field: str
    percents: list[str]
    id: str = "1"

    def to_json_data(self) -> dict[str, Any]:
        return {"type": "percentiles", "id": self.id, "field": self.field, "settings": {"percents": self.percents}}


@attr.s(auto_attribs=True)
class TermsBucket(elasticsearch.TermsGroupBy):
    """Terms with string settings and ``_key`` ordering (``_term`` is gone from Elasticsearch 8)."""

    field: str = ""
    id: Any = "2"
    size: Any = "20"
    order: str = "asc"
    orderBy: str = "_key"
    minDocCount: Any = "1"

    def to_json_data(self) -> dict[str, Any]:
        return {
            "type": "terms",
            "id": str(self.id),
            "field": self.field,
            "settings": {
                "size": str(self.size),
                "order": self.order,
                "orderBy": self.orderBy,
                "min_doc_count": str(self.minDocCount),
            },
        }


@attr.s(auto_attribs=True)
class DateHistogramBucket(elasticsearch.DateHistogramGroupBy):
    """Date histogram on ``@timestamp`` (grafanalib defaults to ``time_iso8601`` and integer settings)."""

    id: Any = "3"
    field: str = "@timestamp"
    interval: str = "auto"
    minDocCount: Any = "0"

    def to_json_data(self) -> dict[str, Any]:
        return {
            "type": "date_histogram",
            "id": str(self.id),
            "field": self.field,
            "settings": {"interval": self.interval, "min_doc_count": str(self.minDocCount)},
        }


@attr.s
class EsTarget(elasticsearch.ElasticsearchTarget):
    """An Elasticsearch query: no default date histogram, a datasource reference, no null alias."""

    bucketAggs: list[Any] = attr.ib(factory=list)
    metricAggs: list[Any] = attr.ib(factory=lambda: [CountMetric()])
    datasource = attr.ib(default=None)

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.refId,
            "query": self.query,
            "metrics": self.metricAggs,
            "bucketAggs": self.bucketAggs,
            "timeField": self.timeField,
        }
        if self.alias:
            out["alias"] = self.alias
        if self.datasource is not None:
            out["datasource"] = self.datasource
        if self.hide:
            out["hide"] = True
        return out


@attr.s(auto_attribs=True)
class MathExpression:
    """A server-side expression (``$A / $B``) over the panel's other queries, joined on their labels."""

    refId: str
    expression: str

    def to_json_data(self) -> dict[str, Any]:
        return {
            "refId": self.refId,
            "datasource": ds("__expr__", "__expr__"),
            "type": "math",
            "expression": self.expression,
        }


# ---------------------------------------------------------------- CloudWatch


@attr.s
class CloudwatchMetrics(cloudwatch.CloudwatchMetricsTarget):
    """A CloudWatch metrics query with the keys Grafana 9+ needs (``queryMode``, query/editor modes)."""

    metricQueryType = attr.ib(default=0)  # 0 = metric search, 1 = metric insights (SQL)
    metricEditorMode = attr.ib(default=0)  # 0 = builder, 1 = code (math / SEARCH expression)

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.refId,
            "queryMode": "Metrics",
            "metricQueryType": self.metricQueryType,
            "metricEditorMode": self.metricEditorMode,
            "id": self.id,
            "region": self.region,
            "namespace": self.namespace,
            "metricName": self.metricName,
            "dimensions": self.dimensions,
            "statistic": self.statistic,
            "period": self.period,
            "matchExact": self.matchExact,
            "expression": self.expression,
        }
        if self.alias:
            out["label"] = self.alias
        if self.datasource is not None:
            out["datasource"] = self.datasource
        return out


@attr.s
class CloudwatchLogsInsights(cloudwatch.CloudwatchLogsInsightsTarget):
    """A Logs Insights query addressing log groups by ARN (``logGroupNames`` is deprecated)."""

    logGroups: list[dict[str, str]] = attr.ib(factory=list)  # [{"arn": ..., "name": ...}]
    queryLanguage = attr.ib(default="CWLI")

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.refId,
            "queryMode": "Logs",
            "queryLanguage": self.queryLanguage,
            "id": self.id,
            "region": self.region,
            "expression": self.expression,
            "logGroups": self.logGroups,
            "statsGroups": self.statsGroups,
        }
        if self.datasource is not None:
            out["datasource"] = self.datasource
        return out


def log_group(name: str, region: str, account: str) -> dict[str, str]:
    return {"arn": f"arn:aws:logs:{region}:{account}:log-group:{name}", "name": name}


# ---------------------------------------------------------------- panels

LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}
TOOLTIP = {"mode": "multi", "sort": "desc"}


@attr.s
class NodeGraph(core.Panel):
    """Node Graph panel (missing from grafanalib). Frames: ``edges`` (id, source, target, mainstat...)."""

    mainStatUnit = attr.ib(default="")
    secondaryStatUnit = attr.ib(default="")

    def to_json_data(self) -> dict[str, Any]:
        edges = {
            k: v for k, v in (("mainStatUnit", self.mainStatUnit), ("secondaryStatUnit", self.secondaryStatUnit)) if v
        }
        return self.panel_json(
            {
                "type": NODE_GRAPH_TYPE,
                "options": {"edges": edges, "nodes": {}, "zoomMode": "cooperative"},
                "fieldConfig": {"defaults": {}, "overrides": []},
            }
        )


@attr.s
class LogsPanel(core.Logs):
    """Logs panel with every option the current schema lists."""

    showLogContextToggle = attr.ib(default=True)

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_json_data()
        out["options"]["showLogContextToggle"] = self.showLogContextToggle
        out["fieldConfig"] = {"defaults": {}, "overrides": []}
        return out


@attr.s
class TablePanel(core.Table):
    """Table in the Grafana 8+ shape: no ``columns``/``fontSize``/``styles``; footer and frame index set."""

    unit = attr.ib(default="")
    dataLinks: list[dict[str, Any]] = attr.ib(factory=list)

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_json_data()
        for legacy in ("columns", "fontSize", "mappings", "color", "minSpan"):
            out.pop(legacy, None)
        out["options"] = {
            "frameIndex": 0,
            "showHeader": self.showHeader,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "countRows": False},
            "sortBy": [s.to_json_data() for s in self.sortBy],
        }
        defaults: dict[str, Any] = {
            "custom": {"align": self.align, "inspect": False, "cellOptions": {"type": "auto"}},
        }
        if self.unit:
            defaults["unit"] = self.unit
        if self.dataLinks:
            defaults["links"] = self.dataLinks
        out["fieldConfig"] = {"defaults": defaults, "overrides": []}
        return out


@attr.s
class TimeSeriesPanel(core.TimeSeries):
    """Time series with the legend and tooltip keys the schema requires."""

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_json_data()
        out["options"] = {"legend": dict(LEGEND), "tooltip": dict(TOOLTIP)}
        custom = out["fieldConfig"]["defaults"]["custom"]
        custom["stacking"] = {"mode": "none", "group": "A"}
        custom["barAlignment"] = 0
        if not self.unit:
            out["fieldConfig"]["defaults"].pop("unit", None)
        return out


@attr.s
class BarChartPanel(core.BarChart):
    """Bar chart over a table frame (terms buckets): one bar per ``xField`` value."""

    xField = attr.ib(default="")
    unit = attr.ib(default="")

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_json_data()
        out["options"] = {
            "orientation": "horizontal",
            "xTickLabelRotation": 0,
            "xTickLabelMaxLength": 40,
            "stacking": "none",
            "showValue": "auto",
            "barWidth": 0.8,
            "groupWidth": 0.7,
            "legend": dict(LEGEND),
            "tooltip": dict(TOOLTIP),
            "fullHighlight": False,
        }
        if self.xField:
            out["options"]["xField"] = self.xField
        defaults: dict[str, Any] = {
            "custom": {"lineWidth": 1, "fillOpacity": 80, "gradientMode": "none"},
            "color": {"mode": "palette-classic"},
        }
        if self.unit:
            defaults["unit"] = self.unit
        out["fieldConfig"] = {"defaults": defaults, "overrides": []}
        return out


@attr.s
class StateTimelinePanel(core.StateTimeline):
    """State timeline with legend/tooltip in the current shape."""

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_json_data()
        out["options"]["legend"] = dict(LEGEND)
        out["options"]["tooltip"] = dict(TOOLTIP)
        out["fieldConfig"]["defaults"].pop("mappings", None)
        out["fieldConfig"]["defaults"]["color"] = {"mode": "palette-classic"}
        return out


# ---------------------------------------------------------------- variables


@attr.s
class Variable(core.Template):
    """A template variable in the current shape: no ``useTags``/``tags``/interval keys on other types."""

    description = attr.ib(default="")

    def to_json_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "name": self.name,
            "label": self.label or self.name,
            "hide": self.hide,
            "query": self.query,
            "current": self.current(),
            "options": self.options,
            "skipUrlSync": False,
        }
        if self.description:
            out["description"] = self.description
        if self.dataSource is not None:
            out["datasource"] = self.dataSource
        if self.type in ("query", "datasource"):
            out.update(refresh=self.refresh, multi=self.multi, includeAll=self.includeAll, regex=self.regex or "")
        if self.type == "query":
            out["sort"] = self.sort
            out["definition"] = self.query
        if self.allValue is not None:
            out["allValue"] = self.allValue
        return out

    def current(self) -> dict[str, Any]:
        if self.includeAll and self.default in (None, "$__all"):
            if self.multi:
                return {"selected": True, "text": ["All"], "value": ["$__all"]}
            return {"selected": True, "text": "All", "value": "$__all"}
        value = "" if self.default is None else str(self.default)
        return {"selected": bool(value), "text": value, "value": value}


def variable(**kwargs: Any) -> Variable:
    """Construct a ``Variable`` (a typed entry point: mypy cannot see attrs fields of an untyped base)."""
    factory: Any = Variable
    built: Variable = factory(**kwargs)
    return built


def datasource_variable(name: str, plugin: str, default_uid: str, label: str) -> Variable:
    return variable(name=name, query=plugin, type="datasource", default=default_uid, label=label)


def textbox_variable(name: str, label: str, default: str = "", description: str = "") -> Variable:
    return variable(
        name=name, query=default, type="textbox", default=default, label=label, description=description, refresh=0
    )


def dashboard_links(tag: str) -> list[core.DashboardLink]:
    """Links to every corrtrace dashboard, carrying the variables (``correlation_id``) and the time range."""
    return [
        core.DashboardLink(
            title="corrtrace", type="dashboards", tags=[tag], includeVars=True, keepTime=True, asDropdown=False
        )
    ]


def request_flow_link(uid: str) -> dict[str, Any]:
    """A data link from any row that has a ``correlation_id`` field to the request flow of that id.

    Written with every key the schema's DashboardLink requires; Grafana reads title/url/targetBlank.
    """
    return {
        "title": "Request flow of ${__data.fields.correlation_id}",
        "url": f"/d/{uid}?var-correlation_id=${{__data.fields.correlation_id}}&${{__url_time_range}}",
        "targetBlank": False,
        "type": "link",
        "icon": "external link",
        "tooltip": "",
        "tags": [],
        "asDropdown": False,
        "includeVars": False,
        "keepTime": False,
    }
