"""One variable set per backend: ``$ES_URL`` when set, else the URL follows ``$ES_PORT`` (as the scripts do)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from corrtrace.cli import main
from corrtrace.endpoints import backend_url


def test_url_follows_the_port_unless_set() -> None:
    assert backend_url("ES", {}) == "http://127.0.0.1:9200"
    assert backend_url("ES", {"ES_PORT": "9210"}) == "http://127.0.0.1:9210"
    assert backend_url("ES", {"ES_PORT": "9210", "ES_URL": "http://es.internal:9200/"}) == "http://es.internal:9200"
    assert backend_url("OS", {"OS_PORT": "9311"}) == "http://127.0.0.1:9311"
    assert backend_url("MOTO", {"MOTO_PORT": "5102"}) == "http://127.0.0.1:5102"


def test_dashboards_data_source_and_demo_help_follow_es_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ES_URL", raising=False)
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    monkeypatch.setenv("ES_PORT", "9277")
    result = CliRunner().invoke(main, ["dashboards", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    sources = yaml.safe_load((tmp_path / "provisioning/datasources/corrtrace.yaml").read_text())["datasources"]
    assert {s["url"] for s in sources if s["type"] == "elasticsearch"} == {"http://127.0.0.1:9277"}
    monkeypatch.setenv("ES_URL", "http://es.example:9200")
    result = CliRunner().invoke(main, ["demo", "--help"], terminal_width=200)
    assert "http://es.example:9200" in result.output
