"""``corrtrace dashboards build`` says what it wrote, the next command, and which backend the panels need."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from corrtrace.cli import main


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_lists_files_then_next_command_and_the_backend_for_an_embedded_store_user(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dashboards", "build", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    paths = result.stdout.splitlines()
    assert len(paths) == 5 and all(Path(p).exists() for p in paths)
    said = result.stderr
    assert f"wrote 3 dashboards and 2 provisioning files under {tmp_path / 'out'}" in said
    assert "next: corrtrace dashboards import --url http://127.0.0.1:3000 --token $GRAFANA_TOKEN" in said
    assert f"{tmp_path / 'out'}/provisioning/*" in said
    assert "embedded store, which Grafana cannot read" in said and "collector.sinks: [embedded, elasticsearch]" in said


def test_no_backend_warning_when_the_collector_already_ships_to_elasticsearch(tmp_path: Path) -> None:
    config = tmp_path / "corrtrace.yaml"
    config.write_text(yaml.safe_dump({"collector": {"sinks": ["elasticsearch"]}}))
    result = CliRunner().invoke(main, ["dashboards", "build", "--out", str(tmp_path / "out"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "next: corrtrace dashboards import" in result.stderr and "embedded store" not in result.stderr
