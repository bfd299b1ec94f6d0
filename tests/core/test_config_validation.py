"""Config: every bad value is one line naming section, key and what was expected; the CLI exits 2 with no
traceback (issue 10 §6). Validation lives in corrtrace.config's loader, so any field is checked the same way."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from corrtrace.collector.settings import CollectorSettings
from corrtrace.txmanager.settings import load_settings

from corrtrace.cli import main
from corrtrace.config import ConfigError, load_section


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output  # stdout and stderr


def one_clear_line(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], lines[0]


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "corrtrace.yaml"
    path.write_text(text)
    return str(path)


def test_config_env_naming_a_directory(tmp_path: Path) -> None:
    code, out = run(["collect", "--once", "app.log"], env={"CORRTRACE_CONFIG": str(tmp_path)})
    one_clear_line(code, out, str(tmp_path), "is a directory")
    code, out = run(["dashboards", "build", "--out", str(tmp_path / "o")], env={"CORRTRACE_CONFIG": str(tmp_path)})
    assert code == 2 and "is a directory" in out and "Traceback" not in out


def test_data_dir_pointing_at_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    (tmp_path / "app.log").write_text('{"correlation_id": "a"}\n')
    in_file = config(tmp_path, f"collector:\n  data_dir: {blocker}\n")
    for args in (["--data-dir", str(blocker / "sub")], ["--config", in_file]):
        code, out = run(["collect", "--once", *args, str(tmp_path / "app.log")])
        one_clear_line(code, out, "collector.data_dir", "expected a directory", f"{blocker} is a file")


def test_txmanager_port_out_of_range(tmp_path: Path) -> None:
    path = config(tmp_path, "txmanager:\n  port: 99999\n")
    with pytest.raises(ConfigError, match=r"^txmanager\.port: expected a number of at most 65535, got 99999$"):
        load_settings(path, env={})
    code, out = run(["txmanager", "serve", "--port", "99999"])
    assert code == 2 and "99999" in out and "Traceback" not in out


def test_misspelt_section_suggests_the_right_name(tmp_path: Path) -> None:
    path = config(tmp_path, "colector:\n  paths: [app.log]\n")
    with pytest.raises(ConfigError, match="unknown section 'colector'; did you mean 'collector'"):
        load_section("collector", CollectorSettings, path=path, env={})
    code, out = run(["collect", "--once", "--config", path, "app.log"])
    one_clear_line(code, out, "colector", "did you mean 'collector'")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("flush_interval", ".nan", "expected a finite number"),
        ("flush_interval", ".inf", "expected a finite number"),
        ("flush_interval", "0", "expected a number greater than 0"),
        ("flush_interval", "-1", "expected a number greater than 0"),
        ("stats_interval", "-5", "expected a number greater than 0"),
        ("backoff_max", ".inf", "expected a finite number"),
        ("batch_max_events", "-3", "expected a number of at least 0"),  # any number: >= 0 unless declared otherwise
        ("dead_letter_max_mb", "-1", "expected a number of at least 0"),
    ],
)
def test_bad_numbers_in_the_collector_section(tmp_path: Path, key: str, value: str, expected: str) -> None:
    path = config(tmp_path, f"collector:\n  {key}: {value}\n")
    code, out = run(["collect", "--once", "--config", path, "app.log"])
    one_clear_line(code, out, f"collector.{key}: {expected}")


def test_bad_value_from_the_environment_names_the_variable() -> None:
    code, out = run(["collect", "--once", "app.log"], env={"CORRTRACE_COLLECTOR_FLUSH_INTERVAL": "nan"})
    one_clear_line(
        code, out, "collector.flush_interval: expected a finite number", "(from CORRTRACE_COLLECTOR_FLUSH_INTERVAL)"
    )


def test_unknown_collector_variable_warns_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_section("collector", CollectorSettings, env={"CORRTRACE_COLLECTOR_FLUSH_INTERVALL": "1"})
    assert settings.flush_interval == 0.5
    err = capsys.readouterr().err
    assert "CORRTRACE_COLLECTOR_FLUSH_INTERVALL is not a setting of the collector section" in err
    assert "did you mean CORRTRACE_COLLECTOR_FLUSH_INTERVAL?" in err


def test_json_mapping_and_list_in_the_environment() -> None:
    settings = load_settings(env={"CORRTRACE_TXMANAGER_SERVICE_URLS": '{"a": "http://x"}'})
    assert settings.service_urls == {"a": "http://x"}
    env = {"CORRTRACE_COLLECTOR_PATHS": '["a.log", "b.log"]', "CORRTRACE_COLLECTOR_SINKS": "embedded, cloudwatch"}
    collector = load_section("collector", CollectorSettings, env=env)
    assert collector.paths == ["a.log", "b.log"] and collector.sinks == ["embedded", "cloudwatch"]
    with pytest.raises(ConfigError, match=r"txmanager\.service_urls: not valid JSON"):
        load_settings(env={"CORRTRACE_TXMANAGER_SERVICE_URLS": '{"a": '})


def test_a_node_listed_twice_is_one_node() -> None:
    """elasticsearch-py refuses a node pool with duplicates (a ValueError traceback from `collect`)."""
    env = {"CORRTRACE_COLLECTOR_ES_URL": "http://es-1:9200, http://es-2:9200/,http://es-1:9200/, http://es-2:9200"}
    collector = load_section("collector", CollectorSettings, env=env)
    assert collector.es_url == ["http://es-1:9200", "http://es-2:9200/"]


def test_a_field_added_later_is_validated_the_same_way() -> None:
    @dataclass
    class Later:
        ratio: float = 0.5
        names: list[str] = field(default_factory=list)

    with pytest.raises(ConfigError, match=r"^collector\.ratio: expected a finite number, got inf$"):
        load_section("collector", Later, data={"collector": {"ratio": math.inf}}, env={})
    with pytest.raises(ConfigError, match=r"^collector\.names\[1\]: expected a string, got \['a', \[1\]\]$"):
        load_section("collector", Later, data={"collector": {"names": ["a", [1]]}}, env={})


def test_tail_paths_matching_nothing_fail_once_and_warn_when_following(tmp_path: Path) -> None:
    code, out = run(["collect", "--once", "--data-dir", str(tmp_path / "d"), str(tmp_path / "nope-*.log")])
    one_clear_line(code, out, "nope-*.log", "matches no file")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRTRACE_")}
    follower = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from corrtrace.cli import main; main()",
            "collect",
            "--data-dir",
            str(tmp_path / "d"),
            str(tmp_path / "later.log"),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = follower.stderr.readline() if follower.stderr else ""
        assert "warning" in first and "later.log" in first and "matches no file" in first
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(timeout=30)


def _alias_bomb(levels: int = 8) -> str:
    """A YAML flow list of ``levels`` anchors, each ten aliases of the one before: 10**levels strings."""
    items = []
    for i in range(levels):
        element = f"*l{i - 1}" if i else "x"
        items.append(f"&l{i} [" + ", ".join([element] * 10) + "]")
    return "[" + ", ".join(items) + "]"


ALIAS_BOMB = _alias_bomb()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"collector:\n  paths: {ALIAS_BOMB}\n", "collector.paths[0]: expected a string, got [["),
        (f"collector:\n  es_auth: '{'k' * 1_000_000}'\n", "collector.es_auth: expected aws_sigv4 (or unset), got 'kkk"),
        ('collector:\n  "bad\\nkey": 1\n', "collector.bad\\nkey: unknown key"),
        (f"? '{'s' * 100_000}'\n: 1\n", "unknown section 'sss"),
    ],
    ids=["alias-bomb", "megabyte-string", "newline-in-key", "huge-section"],
)
def test_a_value_of_any_size_is_shown_in_one_short_line(tmp_path: Path, text: str, where: str) -> None:
    """The error line used to carry the whole value: 40 MB for the alias bomb, a megabyte for a pasted string,
    a raw newline that split the line."""
    code, output = run(["collect", "--once", "--config", config(tmp_path, text)])
    one_clear_line(code, output, where)
    assert len(output) < 1_000, output[:1_000]  # the value at most 160 characters (+ the known keys' list)


def test_the_transaction_managers_section_shows_values_the_same_way(tmp_path: Path) -> None:
    path = config(tmp_path, f"txmanager:\n  open_ttl_action: {ALIAS_BOMB}\n")
    with pytest.raises(ConfigError, match=r"^txmanager\.open_ttl_action: expected a string, got \[\[") as caught:
        load_settings(path, env={})
    assert len(str(caught.value)) < 300


NOT_UTF8 = b"logs-\xff\xfe".decode(errors="surrogateescape")  # what Python makes of undecodable argv/env bytes


@pytest.mark.parametrize(
    ("args", "env", "where"),
    [
        (
            ["collect", "--once", "--data-dir", "d", "app.log"],
            {"CORRTRACE_COLLECTOR_INDEX_PREFIX": NOT_UTF8},
            "collector.index_prefix: expected UTF-8 text",
        ),
        (["search", "x"], {"CORRTRACE_COLLECTOR_PATHS": NOT_UTF8}, "collector.paths: expected UTF-8 text"),
        (["collect", "--once", "--config", "<yaml>", "app.log"], {}, "collector.index_prefix: expected UTF-8 text"),
        (["search", "x", "--index-prefix", NOT_UTF8], {}, "argument 4 (b'logs-\\xff\\xfe') is not valid UTF-8"),
        (["parse-test", "--service", NOT_UTF8, "line"], {}, "argument 3"),
        (["collect", "--once", "--format", NOT_UTF8, "app.log"], {}, "argument 4"),
    ],
    ids=["env-index-prefix", "env-paths", "yaml-surrogate-escape", "argv-search", "argv-parse-test", "argv-format"],
)
def test_text_that_is_not_utf8_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], where: str
) -> None:
    """Undecodable bytes in an argument or a variable (Python holds them as lone surrogates), or a YAML
    ``"\\ud800"`` escape, used to end in a UnicodeEncodeError traceback wherever the text was first encoded: an
    index name, a JSON line (for every line: nothing shipped), an orjson dump."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.log").write_text('{"correlation_id": "a"}\n')
    if "<yaml>" in args:
        yaml_file = config(tmp_path, 'collector:\n  index_prefix: "logs-\\ud800"\n')
        args = [yaml_file if a == "<yaml>" else a for a in args]
    code, out = run(args, env=env)
    one_clear_line(code, out, where)


def test_an_events_file_that_is_not_utf8_is_read_like_the_collector_reads_lines(tmp_path: Path) -> None:
    events = tmp_path / "events.txt"
    events.write_bytes(b"ERROR \xff\xfe boom\nINFO fine\n")
    code, out = run(["alerts", "test-pattern", "ERROR", "--events-file", str(events)])
    assert code == 0 and "Traceback" not in out, out
    assert "1 of 2 events match" in out
