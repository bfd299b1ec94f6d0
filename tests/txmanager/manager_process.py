"""``corrtrace txmanager serve`` as a real process, configured by environment (tests and benchmarks/txmanager.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def start_manager(
    port: int, log: Path, settings: Mapping[str, str], *, extra_args: tuple[str, ...] = (), cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the manager with ``CORRTRACE_TXMANAGER_<KEY>`` from ``settings`` and wait for ``/healthz``."""
    env = {**os.environ, **{f"CORRTRACE_TXMANAGER_{k.upper()}": v for k, v in settings.items()}}
    env.pop("CORRTRACE_CONFIG", None)
    cmd = [sys.executable, "-m", "corrtrace.cli", "txmanager", "serve", "--port", str(port), *extra_args]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.time() + 60  # a loaded CI machine starts Python slowly
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"manager did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
