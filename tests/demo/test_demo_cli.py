"""``corrtrace demo`` on embedded defaults (the README's first command), its exit codes, ``--keep-running`` and
Ctrl-C stopping every process it started; ``corrtrace search`` finds the failed request's flow."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from corrtrace.cli import main


def test_demo_on_embedded_defaults_passes_and_search_shows_the_failed_flow(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "demo",
            "--orders",
            "40",
            "--seed",
            "7",
            "--poison-rate",
            "0.1",
            "--slow-rate",
            "0.1",
            "--workdir",
            str(workdir),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["verification"]["passed"] is True
    assert report["orders"] == 40 and report["failed"] == report["verification"]["failed_orders"] > 0
    assert report["verification"]["rolled_back_verified"] == report["failed"]
    assert report["mdm"]["inconsistencies"] == []
    became, injected = report["became"], report["expected_failures"]
    assert became["poison"] == {"failed": injected["poison"]}  # what each injected kind became
    assert sum(became["slow"].values()) == injected["slow"] > 0
    fired = {a.get("alert") or a.get("alarm_name") for a in report["alerts"]}
    assert {"code-errors", "stream-jam", "payment-latency"} <= fired
    assert (workdir / "collector" / "store").exists()  # the embedded log store, no Elasticsearch involved
    assert report["dashboards"] and all(Path(p).exists() for p in report["dashboards"])

    cid = report["flow_correlation_id"]
    shown = runner.invoke(main, ["search", cid, "--data-dir", str(workdir / "collector"), "--json"])
    assert shown.exit_code == 0, shown.output
    events = json.loads(shown.stdout)
    services = {e["service"]["name"] for e in events}
    assert {"ui", "catalog", "checkout", "payment", "shipping", "txmanager"} <= services
    assert any(e.get("event", {}).get("action") == "rollback" for e in events)
    assert len(events) == len(report["flow"])


def test_bad_input_exits_2() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["demo", "--decline-rate", "2"]).exit_code == 2
    assert runner.invoke(main, ["demo", "--orders", "0"]).exit_code == 2
    assert runner.invoke(main, ["mdm", "check", "--mesh", "/nonexistent/demo"]).exit_code == 2
    assert "--keep-running" in runner.invoke(main, ["demo", "--help"]).output
    assert "--repair" in runner.invoke(main, ["mdm", "check", "--help"]).output


def test_too_many_orders_or_a_work_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """10**20 orders ran until killed; a --workdir under /proc (or a file) ended in a FileNotFoundError traceback."""
    runner = CliRunner()
    many = runner.invoke(main, ["demo", "--orders", str(10**20)])
    assert many.exit_code == 2 and "must be at most 100,000" in many.output
    (tmp_path / "file").write_text("x")
    for workdir in ("/proc/corrtrace-demo", str(tmp_path / "file" / "demo")):
        result = runner.invoke(main, ["demo", "--orders", "1", "--workdir", workdir])
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "cannot create the work directory" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"services": [', "Expecting value"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"workdir": "w", "moto_url": "http://m", "services": {}}', "unknown key 'services'"),
        (b'{"moto_url": "http://m"}', "no 'workdir'"),
        (b"\xff\xfe", "can't decode byte 0xff"),
    ],
    ids=["truncated", "list", "unknown-key", "missing-key", "not-utf8"],
)
def test_a_damaged_mesh_file_is_one_line_naming_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "mesh.json").write_bytes(content)
    result = CliRunner().invoke(main, ["mdm", "check", "--mesh", str(tmp_path)])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"corrtrace mdm check: {tmp_path / 'mesh.json'}: not a demo mesh file (")
    assert reason in line and "corrtrace demo --keep-running" in line


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_keep_running_then_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "corrtrace.cli", "demo", "--orders", "5", "--workdir", str(workdir), "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "corrtrace mdm check --mesh" in line:
            break
    output = "".join(seen)
    assert "the mesh keeps running" in output, output
    mesh = json.loads((workdir / "mesh.json").read_text())
    ports = [*mesh["ports"].values(), int(mesh["moto_url"].rsplit(":", 1)[1])]
    assert all(_port_open(p) for p in ports)
    for name in ("ui", "catalog", "txmanager"):
        assert f"http://127.0.0.1:{mesh['ports'][name]}" in output  # the URLs are printed
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert not any(_port_open(p) for p in ports)


def test_ctrl_c_while_orders_are_sent_stops_every_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "corrtrace.cli", "demo", "--orders", "5000", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    line = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "mesh up" not in line:
        line = proc.stdout.readline()
        if not line:
            break
    assert "mesh up" in line and "http://" not in line  # URLs that die with the demo: only with --keep-running
    mesh = json.loads((workdir / "mesh.json").read_text())
    ports = [*mesh["ports"].values(), int(mesh["moto_url"].rsplit(":", 1)[1])]
    deadline = time.monotonic() + 30
    ui_log = workdir / "logs" / "ui.log"
    while time.monotonic() < deadline and b"placed" not in ui_log.read_bytes():
        time.sleep(0.1)  # wait until orders are flowing
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "interrupted: stopping every process" in proc.stdout.read()
    assert not any(_port_open(p) for p in ports)


def test_invalid_demo_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "corrtrace.yaml"
    config.write_text("demo:\n  orders: many\n")
    result = CliRunner().invoke(main, ["demo", "--config", str(config)])
    assert result.exit_code == 2
    assert "demo.orders" in result.output


def test_with_elasticsearch_flag_ships_to_the_real_node(
    es_url: str, es: Any, index_prefix: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ES_URL", es_url)
    result = CliRunner().invoke(
        main,
        [
            "demo",
            "-n",
            "8",
            "--seed",
            "3",
            "--decline-rate",
            "0.4",
            "--poison-rate",
            "0",
            "--slow-rate",
            "0",
            "--with-elasticsearch",
            "--index-prefix",
            index_prefix,
            "--workdir",
            str(tmp_path / "d"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(result.stdout)
    assert report["passed"] and report["failed"] > 0 and report["urls"]["elasticsearch"] == es_url
    assert not (tmp_path / "d" / "collector" / "store").exists()  # nothing went to the embedded store
    es.indices.refresh(index=f"{index_prefix}-*")
    hits = es.search(
        index=f"{index_prefix}-*", query={"term": {"correlation_id": report["flow_correlation_id"]}}, size=200
    )["hits"]["hits"]
    services = {h["_source"]["service"]["name"] for h in hits}
    assert {"ui", "catalog", "checkout", "payment", "txmanager"} <= services
    assert len(hits) == len(report["flow"])
