"""What Grafana does with a dashboard's Elasticsearch query, re-done in Python so the generated queries can be
run against a real node without a Grafana: template interpolation (ES queries default to the ``lucene``
format), the ``_search`` body Grafana's backend builds (pkg/tsdb/elasticsearch/data_query.go: range +
query_string filters, raw_data/logs sort and size, nested bucket aggregations, settings passed through), and
the frame a raw_data response becomes (flattened ``_source`` plus ``_id``), with the transformations our
panels use (filterFieldsByName, organize, sortBy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from corrtrace.dashboards.lint import VARIABLE_REF

ALL = "$__all"
DEFAULT_SIZE = 500
_LUCENE_SPECIAL = re.compile(r'([!*+\-=<>\s&|()\[\]{}^~?:\\/"])')


def lucene_escape(value: str) -> str:
    """Grafana's ``luceneEscape``: numbers as-is, every query_string special character backslashed."""
    try:
        float(value)
        return value
    except ValueError:
        return _LUCENE_SPECIAL.sub(r"\\\1", value)


def _format(value: str | list[str], fmt: str) -> str:
    if fmt == "raw":
        return ",".join(value) if isinstance(value, list) else value
    if fmt == "lucene":
        if isinstance(value, str):
            return lucene_escape(value)
        if not value:
            return "__empty__"
        return "(" + " OR ".join(f'"{lucene_escape(v)}"' for v in value) + ")"
    if isinstance(value, list):  # "glob" default for other data sources
        return "{" + ",".join(value) + "}" if len(value) > 1 else "".join(value)
    return value


def interpolate(
    text: str,
    values: Mapping[str, str | list[str]],
    variables: Sequence[Mapping[str, Any]] = (),
    default_format: str = "lucene",
) -> str:
    """Replace ``$var`` / ``${var}`` / ``${var:fmt}`` / ``[[var]]`` as Grafana's template service does.

    ``values`` holds the selected value(s); ``"$__all"`` selects All, which becomes the variable's custom
    ``allValue`` unformatted (Grafana skips formatting custom all values) or every option otherwise.
    """
    by_name = {str(v.get("name")): v for v in variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6) or default_format
        if name not in values:
            return match.group(0)
        value = values[name]
        selected_all = value == ALL or value == [ALL]
        if selected_all:
            custom = by_name.get(name, {}).get("allValue")
            if custom:
                return str(custom)
            options = by_name.get(name, {}).get("options", [])
            value = [str(o["value"]) for o in options if o.get("value") != ALL]
        return _format(value, fmt)

    return VARIABLE_REF.sub(replace, text)


def _int_setting(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number or default


def _bucket_agg(
    bucket: Mapping[str, Any],
    metrics: Sequence[Mapping[str, Any]],
    time_field: str,
    time_from: int,
    time_to: int,
    interval_ms: int,
) -> tuple[str, dict[str, Any]]:
    settings = dict(bucket.get("settings") or {})
    kind = bucket["type"]
    if kind == "date_histogram":
        interval = settings.get("interval", "auto")
        body: dict[str, Any] = {
            "field": bucket.get("field") or time_field,
            "fixed_interval": f"{interval_ms}ms" if interval == "auto" else interval,
            "min_doc_count": _int_setting(settings.get("min_doc_count"), 0),
            "extended_bounds": {"min": time_from, "max": time_to},
            "format": "epoch_millis",
        }
        return "date_histogram", body
    if kind == "terms":
        body = {"field": bucket["field"], "size": _int_setting(settings.get("size"), DEFAULT_SIZE)}
        if "min_doc_count" in settings:
            body["min_doc_count"] = _int_setting(settings["min_doc_count"], 0)
        order_by = settings.get("orderBy")
        if order_by:
            order = settings.get("order", "desc")
            metric_id = re.sub(r"\D.*$", "", str(order_by))
            metric = next((m for m in metrics if metric_id and m.get("id") == metric_id), None)
            if metric is not None and metric.get("type") == "count":
                body["order"] = {"_count": order}
            else:
                body["order"] = {order_by: order}
        return "terms", body
    if kind == "filters":
        filters = {
            (f.get("label") or f.get("query")): {"query_string": {"query": f.get("query"), "analyze_wildcard": True}}
            for f in settings.get("filters", [])
        }
        return "filters", {"filters": filters}
    if kind == "histogram":
        return "histogram", {
            "field": bucket["field"],
            "interval": _int_setting(settings.get("interval"), 1000),
            "min_doc_count": _int_setting(settings.get("min_doc_count"), 0),
        }
    raise ValueError(f"bucket aggregation {kind!r} is not translated here")


def _metric_agg(metric: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if metric.get("field"):
        body["field"] = metric["field"]
    settings = dict(metric.get("settings") or {})
    script = settings.get("script")
    if isinstance(script, dict) and "inline" in script:
        settings["script"] = script["inline"]
    body.update({k: v for k, v in settings.items() if k and v is not None})
    return {metric["type"]: body}


def search_body(
    target: Mapping[str, Any],
    *,
    time_from: int,
    time_to: int,
    interval_ms: int = 60_000,
    time_field: str = "@timestamp",
) -> dict[str, Any]:
    """The ``_search`` body Grafana's backend sends for an (already interpolated) target."""
    metrics: list[Mapping[str, Any]] = list(target.get("metrics") or [{"type": "count", "id": "1"}])
    buckets: list[Mapping[str, Any]] = list(target.get("bucketAggs") or [])
    filters: list[dict[str, Any]] = [
        {"range": {time_field: {"gte": time_from, "lte": time_to, "format": "epoch_millis"}}}
    ]
    query = str(target.get("query") or "")
    if query.strip():
        filters.append({"query_string": {"analyze_wildcard": True, "query": query}})
    body: dict[str, Any] = {"size": 0, "query": {"bool": {"filter": filters}}}
    first = metrics[0]
    if first["type"] in ("raw_data", "raw_document", "logs"):
        settings = first.get("settings") or {}
        order = "asc" if first["type"] == "logs" and settings.get("sortDirection") == "asc" else "desc"
        body["sort"] = [{time_field: {"order": order, "unmapped_type": "boolean"}}, {"_doc": {"order": order}}]
        body["docvalue_fields"] = [time_field]
        key = "limit" if first["type"] == "logs" else "size"
        body["size"] = _int_setting(settings.get(key), DEFAULT_SIZE)
        if first["type"] == "logs":
            body["highlight"] = {
                "fields": {"*": {}},
                "pre_tags": ["@HIGHLIGHT@"],
                "post_tags": ["@/HIGHLIGHT@"],
                "fragment_size": 2147483647,
            }
            buckets = [{"type": "date_histogram", "id": "1", "field": time_field, "settings": {"interval": "auto"}}]
        else:
            return body
    if not buckets:
        raise ValueError("invalid query, missing metrics and aggregations")
    root: dict[str, Any] = {}
    level = root
    for bucket in buckets:
        kind, agg = _bucket_agg(bucket, metrics, time_field, time_from, time_to, interval_ms)
        node: dict[str, Any] = {kind: agg, "aggs": {}}
        level[str(bucket["id"])] = node
        level = node["aggs"]
    if first["type"] != "logs":
        for metric in metrics:
            if metric["type"] != "count":
                level[str(metric["id"])] = _metric_agg(metric)
    body["aggs"] = root
    return body


def flatten(source: Mapping[str, Any], prefix: str = "", depth: int = 10) -> dict[str, Any]:
    """Nested ``_source`` -> dotted keys, as Grafana flattens documents into frame fields."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and depth > 1:
            out.update(flatten(value, name, depth - 1))
        else:
            out[name] = value
    return out


def raw_data_rows(response: Mapping[str, Any], time_field: str = "@timestamp") -> list[dict[str, Any]]:
    """The rows of the frame a raw_data response becomes (``_id``, ``_index`` and the flattened source)."""
    rows = []
    for hit in response["hits"]["hits"]:
        row: dict[str, Any] = {"_id": hit.get("_id"), "_index": hit.get("_index")}
        row.update(flatten(hit.get("_source") or {}))
        rows.append(row)
    return rows


def transform(rows: list[dict[str, Any]], transformations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Apply the row-level transformations the dashboards use; anything else is an error, not a silent skip."""
    for step in transformations:
        kind, options = step["id"], step.get("options") or {}
        if kind == "filterFieldsByName":
            names = list(options.get("include", {}).get("names", []))
            rows = [{n: r[n] for n in names if n in r} for r in rows]
        elif kind == "organize":
            order = options.get("indexByName") or {}
            rename = options.get("renameByName") or {}
            excluded = {k for k, v in (options.get("excludeByName") or {}).items() if v}
            rows = [
                {rename.get(k, k): r[k] for k in sorted(r, key=lambda k: order.get(k, len(order))) if k not in excluded}
                for r in rows
            ]
        elif kind == "sortBy":
            for spec in reversed(options.get("sort", [])):
                rows = sorted(rows, key=_sort_key(str(spec["field"])), reverse=bool(spec.get("desc")))
        elif kind == "partitionByValues":
            continue  # splits one frame into several; rows stay the same
        else:
            raise ValueError(f"transformation {kind!r} is not emulated")
    return rows


def _sort_key(field: str) -> Any:
    def key(row: Mapping[str, Any]) -> tuple[bool, Any]:
        return (row.get(field) is None, row.get(field))

    return key


def buckets(response: Mapping[str, Any], agg_id: str) -> list[dict[str, Any]]:
    """The buckets of the top-level aggregation ``agg_id``."""
    result: list[dict[str, Any]] = response["aggregations"][agg_id]["buckets"]
    return result
