"""``scripts/services status`` with every backend down: one line per backend, its state and how to start it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_status_with_everything_down_says_how_to_start_each(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CORRTRACE_SERVICES_DIR": str(tmp_path),
        "ES_PORT": "22901",
        "OS_PORT": "22902",
        "MOTO_PORT": "22903",
        "REDIS_PORT": "22904",
    }
    result = subprocess.run(
        [str(ROOT / "scripts/services"), "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "curl" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ("elasticsearch", "opensearch", "moto", "redis"):
        (line,) = [x for x in lines if x.startswith(f"{name}:")]
        short = {"elasticsearch": "es"}.get(name, name)
        assert line.endswith(f"start it: scripts/services up {short}"), line
    assert "22903" in next(x for x in lines if x.startswith("moto:"))


def test_killing_a_cluster_node_that_is_not_running_fails_and_says_so(tmp_path: Path) -> None:
    """The cluster tests rely on the kill having happened: a node with no live launcher is an error, not a no-op."""
    env = {**os.environ, "CORRTRACE_SERVICES_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / "scripts/services"), "kill", "es-cluster", "2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "node-2 is not running" in result.stderr
    assert "nothing killed" in result.stderr
