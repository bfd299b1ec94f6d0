"""`corrtrace collect` shows a live throughput line on a terminal and logs periodic stats."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson


def _read_for(fd: int, seconds: float, until: bytes | None = None) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if until is not None and until in out:
                break
    return out


def test_live_line_on_a_terminal_and_periodic_stats(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_bytes(
        b"".join(orjson.dumps({"message": f"m{i}", "correlation_id": f"c{i % 7}"}) + b"\n" for i in range(500))
    )
    primary, secondary = pty.openpty()
    env = {**os.environ, "CORRTRACE_COLLECTOR_STATS_INTERVAL": "0.5"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "corrtrace.cli", "collect", str(log), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    try:
        seen = _read_for(primary, 30, until=b'"collector stats"')
        seen += _read_for(primary, 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = _read_for(primary, 15, until=b'"collector stopped"')
        proc.wait(timeout=20)
        os.close(primary)
    text = (seen + rest).decode("utf-8", "replace")
    assert "\rcorrtrace collect: 500 shipped" in text  # the live line, rewritten in place on a terminal
    stats = [
        orjson.loads(line[line.index("{") :])
        for line in text.replace("\r", "\n").splitlines()
        if '"collector stats"' in line
    ]
    assert stats, text[-2000:]
    assert stats[-1]["labels"]["shipped"] == 500 and stats[-1]["labels"]["read"] == 500
    assert '"collector stopped"' in text
    assert proc.returncode == 0
