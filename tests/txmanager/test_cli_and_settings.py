"""`corrtrace txmanager init|status|rollback`, and the settings: env overrides, secrets kept out of files/logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from corrtrace.txmanager.settings import TxManagerSettings, load_settings

from corrtrace import new_correlation_id
from corrtrace.cli import main
from corrtrace.config import ConfigError
from tests.txmanager.conftest import SECRET, Mesh, Recorder


def test_init_creates_the_table_once(moto_url: str, aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRTRACE_TXMANAGER_DYNAMODB_ENDPOINT", moto_url)
    monkeypatch.setenv("CORRTRACE_TXMANAGER_TABLE_NAME", "cli-made")
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    runner = CliRunner()
    first = runner.invoke(main, ["txmanager", "init", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["created"] is True and json.loads(first.output)["table"] == "cli-made"
    second = runner.invoke(main, ["txmanager", "init", "--json"])
    assert json.loads(second.output)["created"] is False and json.loads(second.output)["table"] == "cli-made"
    table = aws("dynamodb").describe_table(TableName="cli-made")["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "unfinished"


def test_bad_configuration_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRTRACE_TXMANAGER_SECRET", raising=False)
    runner = CliRunner()
    in_file = tmp_path / "secret.yaml"
    in_file.write_text("txmanager:\n  secret: hunter2\n")
    result = runner.invoke(main, ["txmanager", "init", "--config", str(in_file)])
    assert result.exit_code == 2
    assert "txmanager.secret: not allowed in the configuration file" in result.output
    assert "hunter2" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("txmanager:\n  max_attempts: 0\n")
    result = runner.invoke(main, ["txmanager", "status", "abc", "--config", str(bad)])
    assert result.exit_code == 2 and "txmanager.max_attempts" in result.output
    none = tmp_path / "none.yaml"
    none.write_text("txmanager: {}\n")
    result = runner.invoke(main, ["txmanager", "rollback", "abc", "--config", str(none)])
    assert result.exit_code == 2 and "CORRTRACE_TXMANAGER_SECRET" in result.output
    assert runner.invoke(main, ["txmanager", "--help"]).exit_code == 0


def test_status_and_rollback_from_the_cli(mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder("svc")
    m: Mesh = mesh(svc=rec)
    cid = new_correlation_id()
    m.register(cid, "svc")
    monkeypatch.setenv("CORRTRACE_TXMANAGER_SECRET", SECRET)
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    runner = CliRunner()
    result = runner.invoke(main, ["txmanager", "rollback", cid, "--url", m.manager.url, "--reason", "cli", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["started"] is True
    m.wait(cid, ("rolled_back",))
    shown = runner.invoke(main, ["txmanager", "status", cid, "--url", m.manager.url, "--json"])
    assert json.loads(shown.output)["participants"][0]["state"] == "succeeded"
    missing = runner.invoke(main, ["txmanager", "status", new_correlation_id(), "--url", m.manager.url])
    assert missing.exit_code == 1 and "404" in missing.output
    invalid = runner.invoke(main, ["txmanager", "status", "bad id", "--url", m.manager.url])
    assert invalid.exit_code == 2
    monkeypatch.setenv("CORRTRACE_TXMANAGER_SECRET", "wrong")
    refused = runner.invoke(main, ["txmanager", "status", cid, "--url", m.manager.url])
    assert refused.exit_code == 1 and "401" in refused.output and "secret" in refused.output
    assert rec.count() == 1


def test_settings_from_env_and_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"txmanager:\n  secret_file: {secret_file}\n  service_urls: {{ui: 'http://ui:1'}}\n")
    env = {"CORRTRACE_TXMANAGER_MAX_ATTEMPTS": "7", "CORRTRACE_TXMANAGER_BACKOFF_INITIAL": "0.1"}
    settings = load_settings(config, env=env)
    assert settings.max_attempts == 7 and settings.service_urls == {"ui": "http://ui:1"}
    assert settings.resolved_secret() == "from-a-file"
    from_env = load_settings(None, env={"CORRTRACE_TXMANAGER_SECRET": "from-env"})
    assert from_env.resolved_secret() == "from-env" and "from-env" not in repr(from_env)
    assert [settings.backoff(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert TxManagerSettings(backoff_initial=1, backoff_max=3).backoff(10) == 3
    with pytest.raises(ConfigError, match="CORRTRACE_TXMANAGER_SECRET"):
        TxManagerSettings().resolved_secret()
    with pytest.raises(ConfigError, match="backoff_multiplier"):
        TxManagerSettings(backoff_multiplier=0.5)


def test_serve_without_a_table_says_to_run_init(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRTRACE_TXMANAGER_DYNAMODB_ENDPOINT", moto_url)
    monkeypatch.setenv("CORRTRACE_TXMANAGER_TABLE_NAME", "never-created")
    monkeypatch.setenv("CORRTRACE_TXMANAGER_SECRET", SECRET)
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["txmanager", "serve", "--port", "1"])
    assert result.exit_code == 1
    assert "corrtrace txmanager init" in result.output and SECRET not in result.output
