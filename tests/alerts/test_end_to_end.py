"""The talk's flow end to end: failing requests' log events -> metric filter -> alarm -> the real transaction
manager (corrtrace.txmanager on uvicorn, state in DynamoDB on moto) -> each participant's signed rollback
endpoint, exactly once per participant even when the alarm's notification is repeated."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from corrtrace.alerts import AlertEngine, TxManagerAction, builtin_alerts
from corrtrace.alerts.evaluator import ALARM
from corrtrace.txmanager import TxManagerClient, create_app, participant_router
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.store import Store
from fastapi import FastAPI

from tests.alerts.servers import start_uvicorn

SECRET = "alerts-e2e-secret-0123456789"
T0 = 1_800_000_000.0


@pytest.fixture()
def servers() -> Iterator[Callable[[Any, int], uvicorn.Server]]:
    started: list[uvicorn.Server] = []

    def start(app: Any, port: int) -> uvicorn.Server:
        started.append(start_uvicorn(app, port)[0])
        return started[-1]

    yield start
    for server in started:
        server.should_exit = True
    time.sleep(0.2)


def test_alarm_rolls_back_every_participant_once(
    moto_url: str, servers: Callable[[Any, int], uvicorn.Server], free_port: Callable[[], int]
) -> None:
    settings = TxManagerSettings(
        table_name="corrtrace-alerts-e2e",
        dynamodb_endpoint=moto_url,
        sns_endpoint=moto_url,
        secret=SECRET,
        backoff_initial=0.05,
        backoff_max=0.2,
        poll_interval=0.05,
        resume_interval=0,
    )
    store = Store(settings)
    store.create_table()
    effects: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    urls = {}
    for service in ("inventory", "payment"):

        def undo(correlation_id: str, payload: dict[str, Any], _service: str = service) -> dict[str, Any]:
            with lock:
                effects[(_service, correlation_id)] += 1
            return {"undone": _service}

        app = FastAPI()
        app.include_router(participant_router(SECRET, undo))
        port = free_port()
        servers(app, port)
        urls[service] = f"http://127.0.0.1:{port}"
    manager_port = free_port()
    servers(create_app(settings, store=store), manager_port)
    client = TxManagerClient(f"http://127.0.0.1:{manager_port}", SECRET)
    for service, base in urls.items():
        client.register("order-42", service, f"{base}/corrtrace/rollback/{{id}}", f"{base}/corrtrace/commit/{{id}}")

    action = TxManagerAction(client)
    engine = AlertEngine(
        [a for a in builtin_alerts() if a.name == "business-failures"], {"txmanager": action}, clock=lambda: T0
    )
    for cid, outcome in (("order-42", "failure"), ("order-43", "success")):
        event = {"correlation_id": cid, "service": {"name": "checkout"}, "event": {"outcome": outcome}}
        engine.feed(event, orjson.dumps(event).decode(), timestamp=T0 + 1)
    assert [t.new_state for t in engine.tick(T0 + 60)] == [ALARM]
    client.rollback("order-42", reason="duplicate trigger", source="operator")  # a repeated trigger

    deadline = time.time() + 20
    while True:
        state = client.status("order-42")
        if state.get("state") in ("rolled_back", "rollback_failed", "failed"):
            break
        if time.time() > deadline:
            raise AssertionError(f"rollback did not finish: {state}")
        time.sleep(0.05)
    assert state["state"] == "rolled_back"
    assert effects == Counter({("inventory", "order-42"): 1, ("payment", "order-42"): 1})
    assert "order-43" not in str(action.results)
    client.close()
