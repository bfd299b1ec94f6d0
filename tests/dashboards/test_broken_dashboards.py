"""Deliberately broken dashboards: each is rejected with the message that names the defect."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from corrtrace.dashboards import build_all, validate_dashboard

from corrtrace.cli import main

FLOW, HEALTH, _ALERTS = build_all()
Mutation = Callable[[dict[str, Any]], None]
LABEL = re.compile(r' \((?:id \d+ ?)?(?:"[^"]*")?\)')


def plain(where: str) -> str:
    """The JSON path of a problem without the panel label: ``panels[2] (id 3 "x").type`` -> ``panels[2].type``."""
    return LABEL.sub("", where)


def set_path(path: list[Any], value: Any) -> Mutation:
    def mutate(board: dict[str, Any]) -> None:
        node = board
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def pop_path(path: list[Any]) -> Mutation:
    def mutate(board: dict[str, Any]) -> None:
        node = board
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1])

    return mutate


# (name, base, mutation, where the error must point, what it must say)
CASES: list[tuple[str, dict[str, Any], Mutation, str, str]] = [
    (
        "wrong panel type",
        FLOW,
        set_path(["panels", 2, "type"], "nodegraph"),
        "panels[2]",
        "unknown panel type 'nodegraph' (did you mean 'nodeGraph'?)",
    ),
    (
        "unknown panel type",
        FLOW,
        set_path(["panels", 0, "type"], "log-viewer"),
        "panels[0]",
        "unknown panel type 'log-viewer'",
    ),
    ("overlap", FLOW, set_path(["panels", 3, "gridPos", "x"], 6), "panels[3]", "overlaps panels[2]"),
    (
        "wider than the grid",
        FLOW,
        set_path(["panels", 3, "gridPos", "x"], 16),
        "panels[3]",
        "x 16 + w 12 = 28 exceeds the 24-column grid",
    ),
    (
        "undefined variable",
        FLOW,
        set_path(["panels", 1, "targets", 0, "query"], 'correlation_id:"$request_id"'),
        "panels[1].targets[0].query",
        "variable $request_id is not defined in templating.list",
    ),
    (
        "undefined variable in braces",
        HEALTH,
        set_path(["panels", 0, "targets", 0, "query"], "service.name:${svc:lucene}"),
        "panels[0].targets[0].query",
        "variable $svc is not defined",
    ),
    (
        "bad query shape: ES metric type",
        FLOW,
        set_path(["panels", 1, "targets", 0, "metrics", 0, "type"], "log"),
        "panels[1].targets[0].metrics[0].type",
        "'log' is not a known type here",
    ),
    (
        "bad query shape: ES metrics not a list",
        FLOW,
        set_path(["panels", 1, "targets", 0, "metrics"], {"type": "raw_data"}),
        "panels[1].targets[0].metrics",
        "is not of type 'array'",
    ),
    (
        "bad query shape: ES setting not a string",
        HEALTH,
        set_path(["panels", 0, "targets", 0, "bucketAggs", 0, "settings", "size"], 20),
        "panels[0].targets[0].bucketAggs[0]",
        "20 is not of type 'string'",
    ),
    (
        "bad query shape: CloudWatch Logs without region",
        FLOW,
        pop_path(["panels", 5, "targets", 0, "region"]),
        "panels[5].targets[0]",
        "'region' is a required property",
    ),
    (
        "bad query shape: CloudWatch unknown key",
        HEALTH,
        set_path(["panels", 5, "targets", 0, "logGroups"], []),
        "panels[5].targets[0]",
        "'logGroups' was unexpected",
    ),
    (
        "bad query shape: CloudWatch queryMode",
        HEALTH,
        set_path(["panels", 5, "targets", 0, "queryMode"], "Insights"),
        "panels[5].targets[0].queryMode",
        "'Insights' is not one of Metrics, Logs, Annotations",
    ),
    (
        "bad query shape: ES count with a field",
        HEALTH,
        set_path(["panels", 0, "targets", 0, "metrics", 0, "field"], "x"),
        "panels[0].targets[0].metrics[0]",
        "'field' was unexpected",
    ),
    (
        "expression naming a query the panel lacks",
        HEALTH,
        set_path(["panels", 1, "targets", 2, "expression"], "$A / $D"),
        "panels[1].targets[2].expression",
        "variable $D is not defined",
    ),
    (
        "expression type",
        HEALTH,
        set_path(["panels", 1, "targets", 2, "type"], "divide"),
        "panels[1].targets[2].type",
        "'divide' is not an expression type",
    ),
    (
        "duplicate panel id",
        FLOW,
        set_path(["panels", 4, "id"], 2),
        "panels[4]",
        "duplicate panel id 2 (also used by panels[1])",
    ),
    (
        "duplicate refId",
        FLOW,
        lambda b: b["panels"][0]["targets"].append(copy.deepcopy(b["panels"][0]["targets"][0])),
        "panels[0]",
        "duplicate refId 'A' in this panel",
    ),
    (
        "unresolvable datasource uid",
        FLOW,
        set_path(["panels", 0, "datasource", "uid"], "P1809F7CD0C75ACF3"),
        "panels[0]",
        "data source uid 'P1809F7CD0C75ACF3' is not declared",
    ),
    (
        "datasource variable that does not exist",
        FLOW,
        set_path(["panels", 0, "datasource", "uid"], "${loki}"),
        "panels[0]",
        "data source '${loki}' names no template variable",
    ),
    (
        "datasource variable of the wrong plugin",
        FLOW,
        set_path(["panels", 0, "datasource", "uid"], "${cw_datasource}"),
        "panels[0]",
        "lists 'cloudwatch' data sources",
    ),
    (
        "legacy string datasource",
        FLOW,
        set_path(["panels", 0, "datasource"], "Elasticsearch"),
        "panels[0].datasource",
        "is not of type 'object'",
    ),
    (
        "logs sortOrder",
        FLOW,
        set_path(["panels", 0, "options", "sortOrder"], "desc"),
        "panels[0].options.sortOrder",
        "'desc' is not one of ['Descending', 'Ascending']",
    ),
    ("null key", FLOW, set_path(["gnetId"], None), "gnetId", "None is not of type 'string'"),
    ("legacy top-level key", FLOW, set_path(["rows"], []), "(dashboard)", "'rows' was unexpected"),
    (
        "missing schemaVersion",
        FLOW,
        pop_path(["schemaVersion"]),
        "(dashboard)",
        "'schemaVersion' is a required property",
    ),
    (
        "bad uid",
        FLOW,
        set_path(["uid"], "corrtrace request flow with spaces and far too long"),
        "uid",
        "must be 1-40 characters",
    ),
    ("empty title", FLOW, set_path(["title"], " "), "title", "dashboard title is empty"),
]


@pytest.mark.parametrize(("name", "base", "mutate", "where", "message"), CASES, ids=[c[0] for c in CASES])
def test_broken_dashboard_is_rejected_with_the_right_message(
    name: str, base: dict[str, Any], mutate: Mutation, where: str, message: str
) -> None:
    board = copy.deepcopy(base)
    mutate(board)
    errors = [p for p in validate_dashboard(board) if p.severity == "error"]
    matching = [p for p in errors if plain(p.where).startswith(where) and message in p.message]
    assert matching, f"{name}: expected '{where}: ...{message}...', got {[p.line() for p in errors]}"


def test_quirks_are_handled_not_reported() -> None:
    """A raw_data metric with settings matches two oneOf branches: accepted (read as anyOf). Missing options
    Grafana fills itself are warnings, not errors."""
    board = copy.deepcopy(FLOW)
    raw_data = {"type": "raw_data", "id": "1", "settings": {"size": "500"}}
    assert board["panels"][1]["targets"][0]["metrics"][0] == raw_data
    del board["panels"][0]["options"]["showLogContextToggle"]
    problems = validate_dashboard(board)
    assert [(p.severity, plain(p.where)) for p in problems] == [("warning", "panels[0].options")]
    assert "'showLogContextToggle' is a required property" in problems[0].message


def test_validate_cli_one_line_per_problem_and_exit_codes(tmp_path: Path) -> None:
    broken = copy.deepcopy(FLOW)
    broken["panels"][2]["type"] = "nodegraph"
    broken["panels"][4]["id"] = 2
    broken["panels"][1]["targets"][0]["query"] = "correlation_id:$nope"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dashboard": broken, "meta": {"slug": "x"}}))  # API export envelope
    good = tmp_path / "good.json"
    good.write_text(json.dumps(FLOW))
    runner = CliRunner()
    result = runner.invoke(main, ["dashboards", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{bad}: error: ") for line in lines)
    assert any("nodegraph" in line for line in lines) and any("$nope" in line for line in lines)
    as_json = runner.invoke(main, ["dashboards", "validate", "--json", str(bad)])
    assert as_json.exit_code == 1 and len(json.loads(as_json.stdout)[str(bad)]) == 3
    assert runner.invoke(main, ["dashboards", "validate", str(good)]).exit_code == 0
    assert runner.invoke(main, ["dashboards", "validate", str(tmp_path / "missing.json")]).exit_code == 2
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    result = runner.invoke(main, ["dashboards", "validate", str(garbage)])
    assert result.exit_code == 1 and "not valid JSON" in result.stdout


def test_users_dashboard_with_known_datasource_and_warnings_only() -> None:
    """A hand-written dashboard: a raw uid is fine once declared; strict mode turns warnings into failure."""
    board = {
        "title": "mine",
        "uid": "mine",
        "schemaVersion": 39,
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": [
            {
                "type": "logs",
                "title": "l",
                "gridPos": {"x": 0, "y": 0, "w": 24, "h": 8},
                "datasource": {"type": "elasticsearch", "uid": "P1809F7CD0C75ACF3"},
                "options": {"sortOrder": "Ascending"},
                "targets": [{"query": "$__interval", "metrics": [{"type": "logs", "id": "1"}], "bucketAggs": []}],
            }
        ],
    }
    problems = validate_dashboard(board, datasource_uids=["P1809F7CD0C75ACF3"])
    assert problems and all(p.severity == "warning" for p in problems)
    wheres = " ".join(plain(p.where) for p in problems)
    assert "panels[0].options" in wheres and "targets[0]" in wheres and "panels[0]" in wheres


def test_datasource_uids_from_a_provisioning_file(tmp_path: Path) -> None:
    board = copy.deepcopy(FLOW)
    board["panels"][0]["datasource"] = {"type": "elasticsearch", "uid": "prod-es"}
    board["panels"][0]["targets"][0]["datasource"] = {"type": "elasticsearch", "uid": "prod-es"}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(board))
    runner = CliRunner()
    result = runner.invoke(main, ["dashboards", "validate", str(path)])
    assert result.exit_code == 1 and result.stdout.count("data source uid 'prod-es' is not declared") == 2
    sources = tmp_path / "datasources.yaml"
    sources.write_text("apiVersion: 1\ndatasources:\n  - name: es\n    type: elasticsearch\n    uid: prod-es\n")
    assert runner.invoke(main, ["dashboards", "validate", "--datasources", str(sources), str(path)]).exit_code == 0
    assert runner.invoke(main, ["dashboards", "validate", "--datasource-uid", "prod-es", str(path)]).exit_code == 0
    sources.write_text("apiVersion: 1\n")
    assert runner.invoke(main, ["dashboards", "validate", "--datasources", str(sources), str(path)]).exit_code == 2
