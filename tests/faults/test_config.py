"""Bad configuration and hostile arguments, command by command: each ends in one clear line on stderr and the
exit code of its kind (2 for a setting or an argument), never a Python traceback (issue 10, §6 and "the next
ones"). The collector's index template against the REAL Elasticsearch and OpenSearch nodes."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corrtrace.collector import connect, ensure_index_template

from corrtrace.config import ConfigError


def _corrtrace(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what a user sees, logging set up as in production."""
    return subprocess.run(
        [sys.executable, "-m", "corrtrace.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _one_clear_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The ``corrtrace <command>: ...`` error line; no traceback anywhere in the output or the JSON log."""
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "stack_trace" not in out, out[-3000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith(f"corrtrace {command}: ")]
    assert lines, done.stderr[-3000:]
    return lines[0]


# -- the index template: another template over the same indices at the same priority --------------------------
@pytest.fixture(params=["elasticsearch", "opensearch"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Any]]:
    """(sink name, node URL, client) for each real node; every template and index under the test's prefix is
    removed afterwards."""
    name = request.param
    url = request.getfixturevalue("es_url" if name == "elasticsearch" else "os_url")
    client = connect(url, flavor=name, timeout=60.0)
    base = f"t-ov-{uuid.uuid4().hex[:8]}"
    try:
        yield name, url, (client, base)
    finally:
        for template in (base, f"{base}-next"):
            if name == "elasticsearch":
                client.options(ignore_status=404).indices.delete_index_template(name=template)
                client.options(ignore_status=404).indices.delete(index=f"{template}-*", expand_wildcards="all")
            else:
                client.indices.delete_index_template(name=template, ignore=404)
                client.indices.delete(index=f"{template}-*", params={"expand_wildcards": "all"}, ignore=404)
        client.close()


def test_an_overlapping_index_template_is_one_config_error_line(backend: Any, tmp_path: Path) -> None:
    """Prefix ``<p>-next`` under an existing ``<p>`` template (``<p>-*``, same priority): the server answers 400;
    ``collect`` says which two templates overlap and what to do, exit 2, and ships nothing to the wrong place."""
    name, url, (client, base) = backend
    ensure_index_template(client, base)  # another collector's template, <base>-*
    (tmp_path / "app.log").write_text('{"correlation_id":"ov-1","message":"m"}\n')
    (tmp_path / "c.yaml").write_text(
        f"collector:\n  sinks: [{name}]\n  es_url: {url}\n  index_prefix: {base}-next\n  backoff_max: 1\n"
    )
    done = _corrtrace("collect", "--once", "--config", "c.yaml", "--data-dir", "d", "app.log", cwd=tmp_path)
    line = _one_clear_line(done, "collect")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"'{base}-next' (indices {base}-next-*)" in line and f"'{base}' ({base}-*)" in line, line
    assert "index_prefix" in line and f"delete template '{base}'" in line, line


def test_the_broader_prefix_installed_second_names_the_narrower_template(backend: Any) -> None:
    """The other order: ``<p>-next`` exists and ``<p>`` (whose ``<p>-*`` covers it) is installed: same error."""
    _, _, (client, base) = backend
    ensure_index_template(client, f"{base}-next")
    with pytest.raises(ConfigError, match=rf"existing template '{base}-next' \({base}-next-\*\)"):
        ensure_index_template(client, base)


# -- every command, hostile settings and arguments: one line, the right exit code ------------------------------
def _invoke(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """``corrtrace ARGS`` in this process; a Python exception escaping the command fails the test."""
    from click.testing import CliRunner

    from corrtrace.cli import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, env={"CORRTRACE_CONFIG": None})
    finally:
        os.chdir(old)
    assert isinstance(result.exception, SystemExit | None), "".join(traceback.format_exception(result.exception))
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    return result.exit_code, result.stderr, result.stdout


COLLECTOR_CONFIG = [  # (collector settings, what the one line says)
    ("collector: " + "[" * 3000 + "]" * 3000, "not valid YAML (nested too deeply)"),
    ("collector:\n  sinks: [elasticsearch]\n  es_url: 'not a url'", "collector.es_url[0]: expected an http:// or"),
    ("collector:\n  es_url: 'http://127.0.0.1:99999'", "collector.es_url[0]: not a URL (Port out of range"),
    ("collector:\n  es_url: ['http://[::1']", "collector.es_url[0]: not a URL (Invalid IPv6 URL)"),
    ("collector:\n  cloudwatch_endpoint_url: 'ftp://x'", "collector.cloudwatch_endpoint_url: expected an http://"),
    ("collector:\n  cloudwatch_region: 'bad region!'", "collector.cloudwatch_region: not an AWS region name"),
    ("collector:\n  index_prefix: Logs", "collector.index_prefix: expected lowercase"),
    ("collector:\n  index_prefix: 'a*'", "collector.index_prefix: an index name cannot contain '*'"),
    ("collector:\n  index_prefix: '_x'", "collector.index_prefix: an index name cannot start with '_'"),
    ("collector:\n  index_prefix: " + "a" * 250, "collector.index_prefix: too long"),
    ("collector:\n  es_timeout: 0", "collector.es_timeout: expected a number greater than 0"),
    ("collector:\n  multiline_max_bytes: 0", "collector.multiline_max_bytes: expected a number greater than 0"),
    ("collector:\n  cloudwatch_log_group: '{environment.__class__}'", "unknown placeholder {environment.__class__}"),
    ("collector:\n  retention_days: 100000000000", "collector.retention_days: expected at most 100000 days"),
    ("collector:\n  data_dir: /proc/1/corrtrace", "collector.data_dir: cannot create /proc/1/corrtrace"),
]


@pytest.mark.parametrize(("settings", "says"), COLLECTOR_CONFIG, ids=[s for _, s in COLLECTOR_CONFIG])
def test_a_bad_collector_setting_is_one_line(tmp_path: Path, settings: str, says: str) -> None:
    (tmp_path / "app.log").write_text('{"correlation_id":"c-1"}\n')
    (tmp_path / "c.yaml").write_text(settings + "\n")
    code, err, _ = _invoke(["collect", "--once", "--config", "c.yaml", "app.log"], tmp_path)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


ARGUMENTS = [  # (command line, exit code, what the one line says)
    (["search", "r-1", "--since", "99999999999999d"], 2, "not a time: '99999999999999d'"),
    (["search", "r-1", "--until", "99999999999999999999999"], 2, "not a time: '99999999999999999999999'"),
    (["search", "r-1", "--backend", "elasticsearch", "--es-url", "http://[::1"], 2, "collector.es_url[0]: not a URL"),
    (["prune", "--days", "99999999999999"], 2, "--days: expected at most 100000"),
    (["prune", "--data-dir", "/proc/1/corrtrace"], 2, "collector.data_dir: cannot create /proc/1/corrtrace"),
]


ALERT = """alerts:
  - name: a1
    log_groups: [/g]
    pattern: Error
    metric: {{namespace: n, name: m, value: '{value}'}}
    alarm: {{statistic: Sum, period: 60, evaluation_periods: 1, threshold: {threshold}}}
"""
ARGUMENTS += [
    (["alerts", "evaluate", "-f", "nan.yaml", "app.log"], 2, "field 'alarm.threshold': expected a finite number"),
    (["alerts", "evaluate", "-f", "inf.yaml", "app.log"], 2, "field 'metric.value': expected a finite number"),
    (["alerts", "evaluate", "missing.log"], 2, "missing.log: cannot read (No such file or directory)"),
    (["alerts", "evaluate", "--follow", "--duration", "nan", "app.log"], 2, "expected a finite number of seconds"),
    (["alerts", "deploy", "--dry-run", "--region", "us-east-1", "--endpoint-url", "x"], 2, "Invalid endpoint: x"),
    (["alerts", "deploy", "--dry-run", "--region", "bad region!"], 2, "--region 'bad region!'"),
    (["alerts", "evaluate", "--state-file", "state.json", "app.log"], 0, "alarm state file state.json is unreadable"),
]

ARGUMENTS += [
    (["txmanager", "commit", "c-1", "--url", "http://[::1"], 2, "Invalid value for '--url': not a URL"),
    (["txmanager", "follow-failures", "--log-level", "NOPE"], 2, "Invalid value for '--log-level'"),
    (["txmanager", "status", "c-1", "--config", "tx.yaml"], 2, "txmanager.dynamodb_endpoint: expected an http://"),
    (["txmanager", "status", "c-1", "--config", "region.yaml"], 2, "txmanager.region: not an AWS region name"),
    (["dashboards", "build", "--out", "/proc/1/corrtrace"], 2, "--out /proc/1/corrtrace: cannot write"),
    (["dashboards", "validate", "deep.json"], 1, "not a dashboard: JSON nested too deeply"),
    (["log-config", "--service", "s", "--level", "NOPE"], 2, "Invalid value for '--level'"),
]


@pytest.mark.parametrize(("args", "code", "says"), ARGUMENTS, ids=[" ".join(a) for a, _, _ in ARGUMENTS])
def test_a_bad_argument_is_one_line(tmp_path: Path, args: list[str], code: int, says: str) -> None:
    (tmp_path / "d" / "store").mkdir(parents=True)
    (tmp_path / "d" / "store" / "events.sqlite3").touch()
    (tmp_path / "app.log").write_text('{"correlation_id":"c-1","message":"Error"}\n')
    (tmp_path / "nan.yaml").write_text(ALERT.format(value="1", threshold=".nan"))
    (tmp_path / "inf.yaml").write_text(ALERT.format(value="1e999", threshold="1"))
    (tmp_path / "state.json").write_text("{damaged")
    (tmp_path / "tx.yaml").write_text("txmanager:\n  dynamodb_endpoint: not a url\n")
    (tmp_path / "region.yaml").write_text("txmanager:\n  region: ''\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    extra = ["--data-dir", "d"] if "--data-dir" not in args and args[0] in ("search", "prune") else []
    got, err, out = _invoke([*args, *extra], tmp_path)
    problems = [x for x in err.splitlines() if x.strip() and not x.startswith(("alarm ", "Usage:", "Try "))]
    assert got == code and says in err + out, err + out
    assert len(problems) == (2 if code == 0 else 1), err  # the line (and the summary of a run that went on)
