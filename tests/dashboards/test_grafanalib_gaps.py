"""Why the subclasses and the normaliser exist: plain grafanalib 0.7.1 output fails the current schemas."""

from __future__ import annotations

import json
from typing import Any

from corrtrace.dashboards import panels, validate_dashboard
from corrtrace.dashboards.normalize import to_json
from grafanalib import core, elasticsearch
from grafanalib._gen import DashboardEncoder


def plain_grafanalib(datasource: Any) -> core.Dashboard:
    target = elasticsearch.ElasticsearchTarget(query="x", refId="A")
    return core.Dashboard(
        title="raw",
        uid="raw-grafanalib",
        panels=[
            core.Logs(title="l", dataSource=datasource, targets=[target], gridPos=core.GridPos(h=8, w=24, x=0, y=0))
        ],
    ).auto_panel_ids()


def messages(board: dict[str, Any]) -> str:
    return "\n".join(p.line() for p in validate_dashboard(board, datasource_uids=["es"]) if p.severity == "error")


def test_raw_grafanalib_output_is_rejected_for_legacy_keys_and_nulls() -> None:
    raw = plain_grafanalib("Elasticsearch")
    board = json.loads(json.dumps(raw.to_json_data(), cls=DashboardEncoder))
    found = messages(board)
    for expected in (
        "'hideControls', 'rows', 'sharedCrosshair', 'style' were unexpected",
        "gnetId: None",
        "'time_options' was unexpected",
        "'editable', 'error', 'height', 'minSpan', 'span' were",
        "repeatDirection: None",
        "'Elasticsearch' is not of type 'object'",
    ):
        assert expected in found, expected
    assert board["schemaVersion"] == 12  # grafanalib's default: Grafana 4 era
    left = messages(to_json(raw))  # the normaliser removes legacy keys and nulls ...
    assert left.splitlines() == [line for line in found.splitlines() if "'Elasticsearch' is not of type" in line]


def test_raw_grafanalib_queries_need_the_subclasses() -> None:
    """... but grafanalib's Elasticsearch target is wrong in shape: count's stray ``field``/``inlineScript``,
    integer settings and a date histogram on ``time_iso8601`` by default."""
    left = messages(to_json(plain_grafanalib({"type": "elasticsearch", "uid": "es"})))
    assert "metrics[0]: Additional properties are not allowed ('field', 'inlineScript', 'settings' were" in left
    assert "bucketAggs[0].settings.min_doc_count: 0 is not of type 'string'" in left


def test_subclassed_equivalent_validates_cleanly() -> None:
    es = panels.ds("elasticsearch", "corrtrace-es")
    board = to_json(
        core.Dashboard(
            title="subclassed",
            uid="subclassed",
            schemaVersion=panels.SCHEMA_VERSION,
            panels=[
                panels.LogsPanel(
                    title="l",
                    dataSource=es,
                    id=1,
                    gridPos=core.GridPos(h=8, w=24, x=0, y=0),
                    targets=[panels.EsTarget(refId="A", query="x", metricAggs=[panels.LogsMetric()], datasource=es)],
                )
            ],
        )
    )
    assert validate_dashboard(board, datasource_uids=["corrtrace-es"]) == []


def test_collapsed_row_panels_are_linted_among_themselves() -> None:
    row_children = [
        {"type": "table", "id": 3, "title": "a", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8}},
        {"type": "table", "id": 3, "title": "b", "gridPos": {"x": 6, "y": 1, "w": 12, "h": 8}},
        {"type": "nodegraph", "id": 4, "title": "c", "gridPos": {"x": 0, "y": 9, "w": 24, "h": 8}},
    ]
    board = {
        "title": "rows",
        "uid": "rows",
        "schemaVersion": 42,
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": [
            {"type": "table", "id": 1, "title": "top", "gridPos": {"x": 0, "y": 1, "w": 24, "h": 8}},
            {
                "type": "row",
                "id": 2,
                "title": "details",
                "collapsed": True,
                "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
                "panels": row_children,
            },
        ],
    }
    lines = [p.line() for p in validate_dashboard(board) if p.severity == "error"]
    assert any("panels[1].panels[1]" in line and "duplicate panel id 3" in line for line in lines)
    assert any("panels[1].panels[1]" in line and "overlaps panels[1].panels[0]" in line for line in lines)
    assert any("panels[1].panels[2]" in line and "did you mean 'nodeGraph'" in line for line in lines)
    # children of a collapsed row open below it: not compared with the top-level panel they share rows with
    assert not any("overlaps panels[0]" in line for line in lines)
