"""Where the data lives: the per-user data directory by default (project-local only when ./corrtrace.yaml says
so), and ``corrtrace search`` names the store it read, exits 1 on no lines (like grep) and hints at an empty
store; terminal colour codes are stripped from the table and kept in --json."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from corrtrace.cli import main

ANSI = "\x1b[35m\x1b[1mGET /health\x1b[0m"


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, " ".join(result.output.split())  # as one line: rich wraps at 80 columns


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh per-user data directory, no configuration file, and a working directory of its own."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    return tmp_path


def test_collect_and_search_meet_in_the_user_data_dir_from_any_directory(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = home / "app.log"
    log.write_bytes(orjson.dumps({"correlation_id": "one-1", "service": {"name": "api"}, "message": ANSI}) + b"\n")
    code, out = run(["collect", "--once", str(log)])
    assert code == 0, out
    store = home / "xdg" / "corrtrace" / "collector" / "store" / "events.sqlite3"
    assert store.exists() and not (home / "project" / ".corrtrace").exists()
    (home / "elsewhere").mkdir()
    monkeypatch.chdir(home / "elsewhere")
    code, out = run(["search", "one-1"])
    assert code == 0, out
    assert "one-1: 1 line, services: api" in out and f"from the embedded store {store}" in out
    assert "GET /health" in out and "\x1b" not in out and "[35m" not in out
    code, out = run(["search", "one-1", "--json"])
    assert orjson.loads(out)[0]["message"] == ANSI  # kept as logged


def test_search_with_nothing_collected_exits_1_naming_the_store_and_creates_nothing(home: Path) -> None:
    code, out = run(["search", "nobody-1"])
    store = home / "xdg" / "corrtrace" / "collector" / "store" / "events.sqlite3"
    assert code == 1
    assert f"no lines for correlation id nobody-1: there is no embedded store {store}" in out
    assert "corrtrace collect --once FILE" in out and not store.exists()


def test_empty_store_gets_a_hint_and_a_missing_id_in_a_full_store_does_not(home: Path) -> None:
    empty = home / "empty.log"
    empty.write_text("")
    assert run(["collect", "--once", str(empty)])[0] == 0
    code, out = run(["search", "nobody-1"])
    assert code == 1 and "in the embedded store" in out and "the store is empty" in out
    log = home / "app.log"
    log.write_text('{"correlation_id": "some-1"}\n')
    assert run(["collect", "--once", str(log)])[0] == 0
    code, out = run(["search", "nobody-1"])
    assert code == 1 and "no lines for correlation id nobody-1 in the embedded store" in out
    assert "the store is empty" not in out


def test_project_local_store_only_when_corrtrace_yaml_says_so(home: Path) -> None:
    (home / "project" / "corrtrace.yaml").write_text("collector:\n  data_dir: .corrtrace/collector\n")
    log = home / "app.log"
    log.write_text('{"correlation_id": "local-1"}\n')
    assert run(["collect", "--once", str(log)])[0] == 0
    assert (home / "project" / ".corrtrace" / "collector" / "store" / "events.sqlite3").exists()
    assert not (home / "xdg" / "corrtrace").exists()
    code, out = run(["search", "local-1"])
    assert code == 0 and "1 line" in out and ".corrtrace/collector/store/events.sqlite3" in out
