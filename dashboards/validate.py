"""Validate any dashboard JSON: the dashboard, each panel's options and each Elasticsearch or CloudWatch
query against Grafana's JSON Schemas, then the lint for what the schemas miss (``lint.py``).

Quirks of the schemas are handled here as documented in ``schemas/README.md``: ``oneOf`` is read as
``anyOf`` (``schemas_loader``), and ``required`` errors under ``options`` / ``fieldConfig.defaults.custom`` are
warnings, because Grafana fills those defaults itself. Because ``anyOf`` alone would let any branch accept an
Elasticsearch metric or bucket aggregation, each one is checked against the definition its ``type`` names, as
Grafana reads it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from corrtrace.dashboards import lint, schemas_loader
from corrtrace.dashboards.problems import Problem, json_path, panel_label
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

EXPORT_KEYS = ("__inputs", "__elements", "__requires")
MAX_FILE_BYTES = 16 << 20


def unwrap(document: Any) -> Any:
    """Accept both a bare dashboard and the API's ``{"dashboard": {...}, "meta": ...}`` envelope."""
    if isinstance(document, dict) and isinstance(document.get("dashboard"), dict) and "panels" not in document:
        return document["dashboard"]
    return document


def _validator(schema: dict[str, Any]) -> Draft7Validator:
    return Draft7Validator(schema)


def _allowed(error: ValidationError) -> list[Any]:
    """The const / enum values an (any-of) error would have accepted."""
    if error.validator == "const":
        return [error.validator_value]
    if error.validator == "enum":
        return list(error.validator_value)
    return [v for sub in error.context or [] for v in _allowed(sub)]


def _explain(error: ValidationError) -> tuple[ValidationError, str]:
    """For an ``anyOf`` failure, the error that says what is wrong, and its message.

    The unions have no discriminator, so a wrong ``type`` (ES metric ``log``) would otherwise be reported
    as whatever the nearest branch dislikes; a failing ``type`` is named first, with the accepted values.
    """
    while error.context:
        on_type = [e for e in error.context if list(e.relative_path) == ["type"]]
        if on_type and all(list(e.relative_path) == ["type"] or e.validator != "required" for e in error.context):
            allowed = sorted({str(v) for e in on_type for v in _allowed(e)})
            if allowed:
                return on_type[0], f"{on_type[0].instance!r} is not a known type here (one of: {', '.join(allowed)})"
        error = best_match(error.context)
    return error, error.message


def _errors(schema: dict[str, Any] | None, instance: Any, prefix: list[Any], warn_required: bool) -> Iterator[Problem]:
    if schema is None:
        return
    for raw in sorted(_validator(schema).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        err, message = _explain(raw)
        where = json_path([*prefix, *err.absolute_path])
        yield Problem(where, message, "warning" if warn_required and err.validator == "required" else "error")


def _dashboard_schema(directory: str | None) -> dict[str, Any]:
    """The dashboard schema with panel items left open: panels are checked one by one for clearer messages."""
    schema = copy.deepcopy(schemas_loader.load("dashboard", directory))
    schema["definitions"]["Dashboard"]["properties"]["panels"]["items"] = {}
    return schema


def all_panels(dashboard: dict[str, Any]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Every panel with its JSON path, including panels nested in (collapsed) rows."""
    panels = dashboard.get("panels")
    if not isinstance(panels, list):
        return
    for i, panel in enumerate(panels):
        if not isinstance(panel, dict):
            continue
        yield ["panels", i], panel
        nested = panel.get("panels")
        if panel.get("type") == "row" and isinstance(nested, list):
            for j, inner in enumerate(nested):
                if isinstance(inner, dict):
                    yield ["panels", i, "panels", j], inner


def _datasource_type(ref: Any, variables: dict[str, dict[str, Any]]) -> str | None:
    if not isinstance(ref, dict):
        return None
    if isinstance(ref.get("type"), str):
        return str(ref["type"])
    uid = ref.get("uid")
    name = lint.variable_name(uid) if isinstance(uid, str) else None
    if name and variables.get(name, {}).get("type") == "datasource":
        query = variables[name].get("query")
        return query if isinstance(query, str) else None
    return None


# The ES unions have no discriminator and, read as anyOf, any branch may accept an item (``Nested`` takes any
# settings). Grafana itself picks the shape by ``type``: so do we, and fall back to the union for unknown types.
ES_METRIC_DEFS = {
    "count": "Count",
    "avg": "Average",
    "sum": "Sum",
    "min": "Min",
    "max": "Max",
    "extended_stats": "ExtendedStats",
    "percentiles": "Percentiles",
    "cardinality": "UniqueCount",
    "raw_document": "RawDocument",
    "raw_data": "RawData",
    "logs": "Logs",
    "rate": "Rate",
    "top_metrics": "TopMetrics",
    "moving_avg": "MovingAverage",
    "moving_fn": "MovingFunction",
    "derivative": "Derivative",
    "serial_diff": "SerialDiff",
    "cumulative_sum": "CumulativeSum",
    "bucket_script": "BucketScript",
}
ES_BUCKET_DEFS = {
    "date_histogram": "DateHistogram",
    "histogram": "Histogram",
    "terms": "Terms",
    "filters": "Filters",
    "geohash_grid": "GeoHashGrid",
    "nested": "Nested",
}


def _es_target_problems(target: dict[str, Any], path: list[Any], directory: str | None) -> Iterator[Problem]:
    whole = schemas_loader.definition("elasticsearch", "dataquery", directory)
    if whole is None:
        return
    shell = copy.deepcopy(whole)
    props = shell["definitions"]["dataquery"]["properties"]
    props["metrics"]["items"] = {}
    props["bucketAggs"]["items"] = {}
    yield from _errors(shell, target, path, warn_required=False)
    for key, union, defs in (
        ("metrics", "MetricAggregation", ES_METRIC_DEFS),
        ("bucketAggs", "BucketAggregation", ES_BUCKET_DEFS),
    ):
        items = target.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            kind = item.get("type") if isinstance(item, dict) else None
            name = defs.get(kind) if isinstance(kind, str) else None
            schema = schemas_loader.definition("elasticsearch", name or union, directory)
            yield from _errors(schema, item, [*path, key, i], warn_required=False)


def _query_problems(ds_type: str, target: dict[str, Any], path: list[Any], directory: str | None) -> Iterator[Problem]:
    if ds_type == "elasticsearch":
        yield from _es_target_problems(target, path, directory)
    elif ds_type == "__expr__":  # server-side expression: the shape is picked by its ``type``
        kind = target.get("type")
        names = {
            "math": "TypeMath",
            "reduce": "TypeReduce",
            "resample": "TypeResample",
            "classic_conditions": "TypeClassicConditions",
            "threshold": "TypeThreshold",
            "sql": "TypeSql",
        }
        name = names.get(kind) if isinstance(kind, str) else None
        if name is None:
            yield Problem(json_path([*path, "type"]), f"{kind!r} is not an expression type ({', '.join(names)})")
            return
        yield from _errors(schemas_loader.definition("expr", name, directory), target, path, warn_required=False)
    elif ds_type == "cloudwatch":
        mode = target.get("queryMode", "Metrics")
        name = {"Metrics": "MetricsQuery", "Logs": "LogsQuery", "Annotations": "AnnotationQuery"}.get(str(mode))
        if name is None:
            yield Problem(json_path([*path, "queryMode"]), f"{mode!r} is not one of Metrics, Logs, Annotations")
            return
        yield from _errors(schemas_loader.definition("cloudwatch", name, directory), target, path, warn_required=False)


def check_panel(
    path: list[Any], panel: dict[str, Any], variables: dict[str, dict[str, Any]], directory: str | None
) -> Iterator[Problem]:
    """Schema layers 1-3 for one panel: its shape, its options (and custom field config), its queries."""
    kind = "RowPanel" if panel.get("type") == "row" else "Panel"
    yield from _errors(schemas_loader.definition("dashboard", kind, directory), panel, path, warn_required=False)
    ptype = panel.get("type")
    stem = schemas_loader.PANEL_SCHEMAS.get(ptype) if isinstance(ptype, str) else None
    if stem is not None:
        if "options" in panel:
            options_schema = schemas_loader.definition(stem, "Options", directory)
            yield from _errors(options_schema, panel["options"], [*path, "options"], warn_required=True)
        field_config = panel.get("fieldConfig")
        defaults = field_config.get("defaults") if isinstance(field_config, dict) else None
        custom = defaults.get("custom") if isinstance(defaults, dict) else None
        if custom is not None:
            field_schema = schemas_loader.definition(stem, "FieldConfig", directory)
            yield from _errors(field_schema, custom, [*path, "fieldConfig", "defaults", "custom"], warn_required=True)
    targets = panel.get("targets")
    if not isinstance(targets, list):
        return
    for k, target in enumerate(targets):
        if not isinstance(target, dict):
            continue
        ds_type = _datasource_type(target.get("datasource"), variables) or _datasource_type(
            panel.get("datasource"), variables
        )
        if ds_type is None:
            continue
        tpath = [*path, "targets", k]
        if ds_type == "cloudwatch" and "queryMode" not in target:
            yield Problem(json_path(tpath), "CloudWatch query without queryMode (always emit it)", "warning")
        yield from _query_problems(ds_type, target, tpath, directory)


def validate_dashboard(
    document: Any, *, schemas_dir: str | None = None, datasource_uids: Iterable[str] = ()
) -> list[Problem]:
    """Every problem of one dashboard: schema layers first, then the lint. Empty list = valid."""
    dashboard = unwrap(document)
    if not isinstance(dashboard, dict):
        return [Problem("(dashboard)", "a dashboard must be a JSON object")]
    # keys of "export for sharing externally" are consumed by POST /api/dashboards/import, not stored
    stored = {k: v for k, v in dashboard.items() if k not in EXPORT_KEYS}
    problems = list(_errors(_dashboard_schema(schemas_dir), stored, [], warn_required=False))
    variables = lint.declared_variables(dashboard)
    for path, panel in all_panels(dashboard):
        prefix = json_path(path)
        for problem in check_panel(path, panel, variables, schemas_dir):
            where = f"{prefix} ({panel_label(panel)}){problem.where[len(prefix) :]}"
            problems.append(Problem(where, problem.message, problem.severity))
    problems.extend(lint.lint(dashboard, datasource_uids=datasource_uids))
    return problems


def read_json(path: str | Path) -> Any:
    """Read a dashboard file, refusing anything larger than ``MAX_FILE_BYTES`` (a dashboard is kilobytes)."""
    file = Path(path)
    if file.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{file} is larger than {MAX_FILE_BYTES // (1 << 20)} MiB: not a dashboard")
    return json.loads(file.read_text(encoding="utf-8"))


def validate_file(path: str | Path, **kwargs: Any) -> list[Problem]:
    """Validate a JSON file; unreadable or invalid JSON is one problem, not an exception."""
    try:
        document = read_json(path)
    except OSError as exc:
        return [Problem("(file)", f"cannot read: {exc.strerror or exc}")]
    except json.JSONDecodeError as exc:
        return [Problem("(file)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
    except RecursionError:
        return [Problem("(file)", "not a dashboard: JSON nested too deeply")]
    except (UnicodeDecodeError, ValueError) as exc:
        return [Problem("(file)", str(exc)[:200])]
    return validate_dashboard(document, **kwargs)
