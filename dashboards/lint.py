"""The checks Grafana's JSON Schemas cannot express (every one of them missed all 22 injected defects):
panel type ids Grafana knows, unique panel ids and refIds, the 24-column grid without overlaps, every
``$variable`` defined, data-source references resolvable, and a usable dashboard uid and title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from corrtrace.dashboards.problems import Problem, json_path, panel_label

GRID_COLUMNS = 24

# Panel plugin ids shipped with Grafana (core panels). Case matters: ``nodeGraph``, not ``nodegraph``.
KNOWN_PANEL_TYPES = frozenset(
    {
        "alertlist",
        "annolist",
        "barchart",
        "bargauge",
        "candlestick",
        "canvas",
        "dashlist",
        "datagrid",
        "debug",
        "flamegraph",
        "gauge",
        "geomap",
        "gettingstarted",
        "graph",
        "heatmap",
        "histogram",
        "live",
        "logs",
        "news",
        "nodeGraph",
        "piechart",
        "row",
        "stat",
        "state-timeline",
        "status-history",
        "table",
        "table-old",
        "text",
        "timeseries",
        "traces",
        "trend",
        "welcome",
        "xychart",
    }
)
# External plugin panels are named ``<org>-<name>-panel`` by Grafana's plugin rules.
PLUGIN_PANEL = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*-panel$")

# Grafana's own variable pattern: $var, [[var]] / [[var:fmt]], ${var}, ${var.path}, ${var:fmt}.
VARIABLE_REF = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
BUILTIN_VARIABLES = frozenset({"timeFilter", "interval"})  # plus every name starting with "__"

# Data sources every Grafana has, addressed by these uids.
BUILTIN_DATASOURCES = frozenset({"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "__expr__"})
UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def variable_name(text: str) -> str | None:
    """The variable a whole string refers to (``$es`` / ``${es}`` / ``[[es]]``), else None."""
    match = VARIABLE_REF.fullmatch(text.strip())
    if not match:
        return None
    return match.group(1) or match.group(2) or match.group(4)


def declared_variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Template variables by name (``templating.list``)."""
    templating = dashboard.get("templating")
    items = templating.get("list") if isinstance(templating, dict) else None
    out: dict[str, dict[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            out[item["name"]] = item
    return out


def _strings(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, [*path, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, [*path, i])


def _panels(dashboard: dict[str, Any]) -> Iterator[tuple[list[Any], dict[str, Any], bool]]:
    """(path, panel, nested-in-collapsed-row) for every panel."""
    panels = dashboard.get("panels")
    for i, panel in enumerate(panels if isinstance(panels, list) else []):
        if not isinstance(panel, dict):
            continue
        yield ["panels", i], panel, False
        if panel.get("type") == "row" and isinstance(panel.get("panels"), list):
            for j, inner in enumerate(panel["panels"]):
                if isinstance(inner, dict):
                    yield ["panels", i, "panels", j], inner, True


def _where(path: list[Any], panel: dict[str, Any]) -> str:
    return f"{json_path(path)} ({panel_label(panel)})"


def check_identity(dashboard: dict[str, Any]) -> Iterator[Problem]:
    uid = dashboard.get("uid")
    if uid is not None and (not isinstance(uid, str) or not UID_PATTERN.match(uid)):
        yield Problem("uid", f"dashboard uid {uid!r} must be 1-40 characters of A-Z a-z 0-9 _ -", check="lint")
    title = dashboard.get("title")
    if not isinstance(title, str) or not title.strip():
        yield Problem("title", "dashboard title is empty (Grafana rejects it with 400)", check="lint")


def check_types(dashboard: dict[str, Any]) -> Iterator[Problem]:
    lowered = {t.lower(): t for t in KNOWN_PANEL_TYPES}
    for path, panel, _ in _panels(dashboard):
        ptype = panel.get("type")
        if not isinstance(ptype, str) or not ptype or ptype in KNOWN_PANEL_TYPES or PLUGIN_PANEL.match(ptype):
            continue
        hint = lowered.get(ptype.lower())
        advice = f" (did you mean {hint!r}?)" if hint else " (not a core panel nor a <org>-<name>-panel plugin id)"
        yield Problem(f"{_where(path, panel)}.type", f"unknown panel type {ptype!r}{advice}", check="lint")


def check_ids(dashboard: dict[str, Any]) -> Iterator[Problem]:
    seen: dict[int, str] = {}
    for path, panel, _ in _panels(dashboard):
        ident = panel.get("id")
        where = _where(path, panel)
        if ident is None:
            yield Problem(where, "panel has no id (links and repeats need one)", "warning", "lint")
        elif ident in seen:
            yield Problem(f"{where}.id", f"duplicate panel id {ident} (also used by {seen[ident]})", check="lint")
        else:
            seen[ident] = json_path(path)
        targets = panel.get("targets")
        refs: set[str] = set()
        for k, target in enumerate(targets if isinstance(targets, list) else []):
            ref = target.get("refId") if isinstance(target, dict) else None
            if not ref:
                yield Problem(f"{where}.targets[{k}]", "query has no refId", "warning", "lint")
            elif ref in refs:
                yield Problem(f"{where}.targets[{k}].refId", f"duplicate refId {ref!r} in this panel", check="lint")
            else:
                refs.add(ref)


def _box(panel: dict[str, Any]) -> tuple[int, int, int, int] | None:
    pos = panel.get("gridPos")
    if not isinstance(pos, dict):
        return None
    try:
        return int(pos["x"]), int(pos["y"]), int(pos["w"]), int(pos["h"])
    except (KeyError, TypeError, ValueError):
        return None


def check_grid(dashboard: dict[str, Any]) -> Iterator[Problem]:
    groups: dict[str, list[tuple[list[Any], dict[str, Any], tuple[int, int, int, int]]]] = {}
    for path, panel, nested in _panels(dashboard):
        box = _box(panel)
        if box is None:
            yield Problem(_where(path, panel), "panel has no usable gridPos {x, y, w, h}", "warning", "lint")
            continue
        x, _, w, _ = box
        if x + w > GRID_COLUMNS:
            yield Problem(
                f"{_where(path, panel)}.gridPos",
                f"x {x} + w {w} = {x + w} exceeds the {GRID_COLUMNS}-column grid",
                check="lint",
            )
        # panels of a collapsed row are laid out when the row opens: compare them with each other only
        group = json_path(path[:2]) if nested else "top"
        groups.setdefault(group, []).append((path, panel, box))
    for members in groups.values():
        for i, (path_a, panel_a, (ax, ay, aw, ah)) in enumerate(members):
            for path_b, panel_b, (bx, by, bw, bh) in members[i + 1 :]:
                if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                    yield Problem(
                        f"{_where(path_b, panel_b)}.gridPos",
                        f"overlaps {_where(path_a, panel_a)}",
                        check="lint",
                    )


def check_variables(dashboard: dict[str, Any]) -> Iterator[Problem]:
    declared = set(declared_variables(dashboard))
    inputs = dashboard.get("__inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            declared.add(item["name"])
    scopes: list[tuple[list[Any], Any]] = [(["panels"], dashboard.get("panels")), (["links"], dashboard.get("links"))]
    templating = dashboard.get("templating")
    if isinstance(templating, dict):
        scopes.append((["templating"], templating.get("list")))
    annotations = dashboard.get("annotations")
    if isinstance(annotations, dict):
        scopes.append((["annotations"], annotations.get("list")))
    # a server-side expression names the panel's other queries as $A, $B: those are refIds, not variables
    ref_ids: dict[str, set[str]] = {}
    for path, panel, _ in _panels(dashboard):
        targets = panel.get("targets")
        ref_ids[json_path(path)] = (
            {str(t.get("refId")) for t in targets if isinstance(t, dict)} if isinstance(targets, list) else set()
        )
    reported: set[tuple[str, str]] = set()
    for base, node in scopes:
        for path, text in _strings(node, base):
            if path and path[-1] in ("description", "name", "label"):
                continue
            owner = path[:4] if len(path) > 3 and path[2] == "panels" else path[:2]
            in_panel = ref_ids.get(json_path(owner), set())
            for match in VARIABLE_REF.finditer(text):
                name = match.group(1) or match.group(2) or match.group(4)
                if not name or name.startswith("__") or name in BUILTIN_VARIABLES or name in declared:
                    continue
                if name in in_panel and "expression" in path:
                    continue
                where = json_path(path)
                if (where, name) in reported:
                    continue
                reported.add((where, name))
                yield Problem(where, f"variable ${name} is not defined in templating.list", check="lint")


def check_datasources(dashboard: dict[str, Any], extra_uids: Iterable[str]) -> Iterator[Problem]:
    variables = declared_variables(dashboard)
    known = set(BUILTIN_DATASOURCES) | set(extra_uids)

    def check(ref: Any, where: str) -> Iterator[Problem]:
        if not isinstance(ref, dict):
            return
        uid = ref.get("uid")
        if not isinstance(uid, str):
            return
        name = variable_name(uid)
        if name is not None:
            var = variables.get(name)
            if name.startswith("DS_"):  # an __inputs placeholder, filled on import
                return
            if var is None:
                yield Problem(where, f"data source {uid!r} names no template variable", check="lint")
            elif var.get("type") != "datasource":
                yield Problem(
                    where, f"data source {uid!r} names a {var.get('type')} variable, not a datasource one", check="lint"
                )
            elif isinstance(ref.get("type"), str) and var.get("query") not in (None, ref["type"]):
                yield Problem(
                    where,
                    f"data source type {ref['type']!r} but variable ${name} lists {var.get('query')!r} data sources",
                    check="lint",
                )
        elif uid not in known:
            yield Problem(
                where, f"data source uid {uid!r} is not declared (known: {', '.join(sorted(known))})", check="lint"
            )

    for path, panel, _ in _panels(dashboard):
        where = _where(path, panel)
        yield from check(panel.get("datasource"), f"{where}.datasource")
        targets = panel.get("targets")
        for k, target in enumerate(targets if isinstance(targets, list) else []):
            if isinstance(target, dict):
                yield from check(target.get("datasource"), f"{where}.targets[{k}].datasource")
    for name, var in variables.items():
        yield from check(var.get("datasource"), f"templating.list[{name}].datasource")


def lint(dashboard: dict[str, Any], *, datasource_uids: Iterable[str] = ()) -> list[Problem]:
    """All lint problems of one (unwrapped) dashboard."""
    uids = list(datasource_uids)
    return [
        *check_identity(dashboard),
        *check_types(dashboard),
        *check_ids(dashboard),
        *check_grid(dashboard),
        *check_variables(dashboard),
        *check_datasources(dashboard, uids),
    ]
