"""A manager SIGKILLed while a slow participant is being called, then restarted, finishes the rollback
without repeating a participant: the ones done before the kill are never called again, the one in flight is
called again (at least once, by design) and its endpoint dedupes it, so every rollback runs exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corrtrace.txmanager import TxManagerClient
from corrtrace.txmanager.settings import TxManagerSettings

from corrtrace import new_correlation_id
from tests.txmanager.conftest import SECRET, Recorder, ServerThread, participant_app
from tests.txmanager.manager_process import start_manager


def _start_manager(settings: TxManagerSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    return start_manager(
        port,
        log,
        {
            "table_name": settings.table_name,
            "dynamodb_endpoint": settings.dynamodb_endpoint or "",
            "secret": SECRET,
            "participant_timeout": "3",
            "lease_margin": "0.5",
            "poll_interval": "0.05",
            "backoff_initial": "0.05",
            "resume_interval": "0",
        },
    )


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_manager_killed_mid_fan_out_resumes_without_repeating_a_participant(
    settings, store, servers: Callable[[Any, int], ServerThread], free_port, tmp_path: Path
) -> None:
    recs = {"a": Recorder("a"), "b": Recorder("b", delay=1.5), "c": Recorder("c")}
    urls = {name: servers(participant_app(rec), free_port()).url for name, rec in recs.items()}
    port = free_port()
    log = tmp_path / "manager.log"
    manager = _start_manager(settings, port, log)
    client = TxManagerClient(f"http://127.0.0.1:{port}", SECRET)
    cid = new_correlation_id()
    try:
        for name in ("a", "b", "c"):  # rollback order: c, b, a
            base = urls[name]
            client.register(cid, name, f"{base}/corrtrace/rollback/{{id}}", f"{base}/corrtrace/commit/{{id}}")
        client.rollback(cid, reason="payment failed", source="alert:business-failure")

        _wait(lambda: recs["b"].hits["rollback"] == 1)  # c is done, b's slow call is in flight
        manager.send_signal(signal.SIGKILL)
        manager.wait(timeout=10)
        assert recs["c"].count() == 1 and recs["a"].hits["rollback"] == 0
        mid = store.participant(cid, "b")
        assert mid is not None and mid.state == "in_progress"

        manager = _start_manager(settings, port, log)
        status: dict[str, Any] = {}

        def finished() -> bool:
            status.update(client.status(cid))
            return status["state"] in ("rolled_back", "failed")

        _wait(finished, timeout=20)
    finally:
        manager.kill()
        manager.wait(timeout=10)
        client.close()

    assert status["state"] == "rolled_back"
    assert {name: rec.count() for name, rec in recs.items()} == {"a": 1, "b": 1, "c": 1}
    assert recs["c"].hits["rollback"] == 1 and recs["a"].hits["rollback"] == 1  # never repeated
    assert recs["b"].hits["rollback"] == 2  # the in-flight call, repeated once and deduped by the endpoint
    by_name = {p["service"]: p for p in status["participants"]}
    assert by_name["b"]["attempts"] == 2 and by_name["c"]["attempts"] == 1 and by_name["a"]["attempts"] == 1
    order = sorted(recs, key=lambda n: recs[n].effects[0][2])
    assert order == ["c", "b", "a"]

    # the manager logged each outcome as a structured event (stdout JSON lines of both runs)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    outcomes = [
        e
        for e in lines
        if e.get("event", {}).get("dataset") == "corrtrace.txmanager" and "service" in e and "target" in e["service"]
    ]
    assert {(e["service"]["target"]["name"], e["event"]["outcome"]) for e in outcomes} == {
        ("a", "success"),
        ("b", "success"),
        ("c", "success"),
    }
    assert all(e["event"]["action"] == "rollback" and e["correlation_id"] == cid for e in outcomes)
    assert all(e["service"]["name"] == "txmanager" for e in outcomes)
    assert all(e["labels"]["scope"] == "participant" and e["event"]["duration"] > 0 for e in outcomes)
    assert all(e["http"]["response"]["status_code"] == 200 for e in outcomes)
    summary = [e for e in lines if e.get("labels", {}).get("scope") == "transaction"]
    assert [(e["event"]["outcome"], e["labels"]["state"], e["correlation_id"]) for e in summary] == [
        ("success", "rolled_back", cid)
    ]
    assert SECRET not in log.read_text()
