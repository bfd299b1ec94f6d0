"""One YAML file plus environment overrides; errors name the key; the CLI answers --help and --version."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from corrtrace import __version__
from corrtrace.cli import LAZY_COMMANDS, main
from corrtrace.config import ConfigError, load_section


@dataclass
class Section:
    url: str = "http://localhost"
    batch: int = 100
    verify: bool = True
    groups: list[str] = field(default_factory=list)
    token: str | None = None


def test_file_then_env_override(tmp_path: Path) -> None:
    cfg = tmp_path / "corrtrace.yaml"
    cfg.write_text("collector:\n  url: http://es:9200\n  batch: 5\n  groups: [a, b]\n")
    env = {"CORRTRACE_COLLECTOR_BATCH": "7", "CORRTRACE_COLLECTOR_VERIFY": "false"}
    section = load_section("collector", Section, path=cfg, env=env)
    assert section == Section(url="http://es:9200", batch=7, verify=False, groups=["a", "b"])
    assert load_section("collector", Section, env={}) == Section()


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("collector:\n  batch: lots\n", {}, "collector.batch: expected an integer, got 'lots'"),
        ("collector:\n  bogus: 1\n", {}, "collector.bogus: unknown key"),
        ("collector: [1]\n", {}, "collector: expected a mapping"),
        ("collector: {}\n", {"CORRTRACE_COLLECTOR_VERIFY": "maybe"}, "collector.verify: expected true or false"),
        ("collector: {url: [\n", {}, "not valid YAML"),
    ],
)
def test_errors_name_section_and_key(tmp_path: Path, text: str, env: dict, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("?", r"\?")):
        load_section("collector", Section, path=cfg, env=env)


def test_cli_version_and_help() -> None:
    runner = CliRunner()
    assert __version__ in runner.invoke(main, ["--version"]).output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in LAZY_COMMANDS:
        assert name in result.output
