"""Generated dashboards: validate with zero problems, current shape, provisioning files, CLI build/validate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from corrtrace.dashboards import build_all, validate_dashboard
from corrtrace.dashboards.lint import variable_name
from corrtrace.dashboards.schemas_loader import VENDORED
from corrtrace.dashboards.settings import DashboardsSettings

from corrtrace.cli import main

BOARDS = build_all()


def walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    out = [(path, node)]
    if isinstance(node, dict):
        for k, v in node.items():
            out += walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += walk(v, f"{path}[{i}]")
    return out


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_generated_dashboard_has_zero_problems_against_the_vendored_schemas(board: dict[str, Any]) -> None:
    assert validate_dashboard(board, schemas_dir=str(VENDORED)) == []
    assert validate_dashboard(board) == []  # the default: the vendored copy, as an installed package uses


def test_vendored_schemas_are_unmodified_copies_with_licence_and_provenance() -> None:
    sums = dict(reversed(line.split(maxsplit=1)) for line in (VENDORED / "SHA256SUMS").read_text().splitlines())
    vendored = sorted(p.name for p in VENDORED.glob("*.jsonschema.json"))
    assert len(vendored) >= 10 and sorted(set(sums) - {"LICENSE"}) == vendored
    for name, digest in sums.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    readme = (VENDORED / "README.md").read_text()
    assert "grafana/grafana-foundation-sdk" in readme and "f178d5a42a8915fdda9235e97ad93881e3f94fef" in readme


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_current_shape_no_nulls_no_legacy_keys(board: dict[str, Any]) -> None:
    assert board["schemaVersion"] == 42
    nulls = [p for p, v in walk(board) if v is None]
    assert nulls == []
    for key in ("rows", "style", "hideControls", "sharedCrosshair", "__inputs", "id", "gnetId"):
        assert key not in board
    for panel in board["panels"]:
        for key in ("span", "height", "minSpan", "error", "columns", "fontSize", "styles"):
            assert key not in panel, (panel["title"], key)
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["datasource"]["uid"] in ("${es_datasource}", "${cw_datasource}")
        for target in panel["targets"]:
            if target["datasource"]["type"] == "__expr__":
                assert target["type"] == "math"
                continue
            assert target["datasource"] == panel["datasource"]
            if panel["datasource"]["type"] == "cloudwatch":
                assert (target["queryMode"] in ("Metrics", "Logs") and "namespace" in target) or "logGroups" in target
            else:
                assert all(m.get("field") != "select field" for m in target["metrics"])


def test_request_flow_panels_and_links() -> None:
    flow = next(b for b in BOARDS if b["uid"] == "corrtrace-request-flow")
    names = {v["name"]: v for v in flow["templating"]["list"]}
    assert names["correlation_id"]["type"] == "textbox"
    assert names["es_datasource"]["query"] == "elasticsearch" and names["cw_datasource"]["query"] == "cloudwatch"
    kinds = [p["type"] for p in flow["panels"]]
    assert kinds == ["logs", "table", "nodeGraph", "barchart", "table", "logs"]
    logs = flow["panels"][0]
    assert logs["options"]["sortOrder"] == "Ascending"
    assert logs["targets"][0]["metrics"][0]["type"] == "logs"
    graph = flow["panels"][2]
    assert graph["targets"][0]["refId"] == "edges"
    renames = graph["transformations"][1]["options"]["renameByName"]
    assert renames["service.name"] == "source" and renames["service.target.name"] == "target"
    assert renames["_id"] == "id"
    insights = flow["panels"][5]["targets"][0]
    assert insights["queryMode"] == "Logs" and "filter correlation_id = '${correlation_id}'" in insights["expression"]
    assert insights["logGroups"][0]["arn"].startswith("arn:aws:logs:")
    for board in BOARDS:  # every dashboard links to the others carrying the variables (correlation_id)
        link = board["links"][0]
        assert link["type"] == "dashboards" and link["includeVars"] and link["tags"] == ["corrtrace"]
        assert "corrtrace" in board["tags"]
        assert "correlation_id" in {v["name"] for v in board["templating"]["list"]}
    linked = [p for b in BOARDS for p in b["panels"] if p.get("fieldConfig", {}).get("defaults", {}).get("links")]
    assert len(linked) == 2
    for panel in linked:
        url = panel["fieldConfig"]["defaults"]["links"][0]["url"]
        assert url.startswith("/d/corrtrace-request-flow?var-correlation_id=${__data.fields.correlation_id}")
        assert "correlation_id" in panel["transformations"][0]["options"]["include"]["names"]


def test_build_cli_writes_dashboards_and_provisioning(tmp_path: Path) -> None:
    config = tmp_path / "corrtrace.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dashboards": {
                    "es_url": "http://es.internal:9200",
                    "cw_region": "eu-west-1",
                    "folder": "Observability",
                    "folder_uid": "obs",
                }
            }
        )
    )
    result = CliRunner().invoke(
        main, ["dashboards", "build", "--out", str(tmp_path / "out"), "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    written = [Path(p) for p in json.loads(result.stdout)["written"]]
    assert sorted(p.name for p in written if p.suffix == ".json") == [
        "corrtrace-alerts-rollbacks.json",
        "corrtrace-request-flow.json",
        "corrtrace-service-health.json",
    ]
    for path in written:
        if path.suffix == ".json":
            assert validate_dashboard(json.loads(path.read_text())) == []
    provider = yaml.safe_load((tmp_path / "out/provisioning/dashboards/corrtrace.yaml").read_text())
    entry = provider["providers"][0]
    assert provider["apiVersion"] == 1 and entry["type"] == "file" and entry["folderUid"] == "obs"
    assert entry["options"]["path"] and entry["folder"] == "Observability"
    sources = yaml.safe_load((tmp_path / "out/provisioning/datasources/corrtrace.yaml").read_text())
    by_type = {d["type"]: d for d in sources["datasources"]}
    es, cw = by_type["elasticsearch"], by_type["cloudwatch"]
    assert es["url"] == "http://es.internal:9200" and es["jsonData"]["index"] == "logs-corrtrace-*"
    assert es["jsonData"]["timeField"] == "@timestamp" and es["jsonData"]["logMessageField"] == "message"
    assert es["jsonData"]["logLevelField"] == "log.level"
    # Grafana expands $VAR in provisioning files: the data link's literal $ must be doubled
    assert es["jsonData"]["dataLinks"][0]["url"].endswith("var-correlation_id=$${__value.raw}")
    assert cw["jsonData"]["defaultRegion"] == "eu-west-1" and "secureJsonData" not in cw
    # the datasource variables of every dashboard default to the provisioned uids
    for path in written:
        if path.suffix == ".json":
            board = json.loads(path.read_text())
            current = {
                v["name"]: v["current"]["value"] for v in board["templating"]["list"] if v["type"] == "datasource"
            }
            assert current == {"es_datasource": es["uid"], "cw_datasource": cw["uid"]}


def test_validate_cli_on_generated_files_exits_0(tmp_path: Path) -> None:
    files = []
    for board in BOARDS:
        path = tmp_path / f"{board['uid']}.json"
        path.write_text(json.dumps(board))
        files.append(str(path))
    result = CliRunner().invoke(main, ["dashboards", "validate", "--schemas", str(VENDORED), *files])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "3 file(s), 0 problem(s)" in result.stderr


def test_settings_change_the_queries() -> None:
    custom = DashboardsSettings(cw_log_groups=["/a", "/b"], metric_namespace="Shop", cw_region="eu-north-1")
    flow, health, _ = build_all(custom)
    groups = flow["panels"][5]["targets"][0]["logGroups"]
    assert [g["name"] for g in groups] == ["/a", "/b"] and groups[1]["arn"].startswith("arn:aws:logs:eu-north-1:")
    assert 'Namespace="Shop"' in health["panels"][5]["targets"][0]["expression"]
    assert variable_name("${es_datasource}") == "es_datasource"
