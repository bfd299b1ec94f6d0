"""Fixtures for the transaction manager: a DynamoDB table and SNS on moto, real uvicorn servers on loopback.

Participants are real FastAPI (or Flask) services built with ``participant_router`` / ``participant_blueprint``;
a recording middleware counts every HTTP call that reaches them, and the callback counts every effect, so a
test can tell "called twice, rolled back once" from "rolled back twice".
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
import uvicorn
from corrtrace.txmanager import TxManagerClient, create_app, participant_router
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.store import Store

from tests.txmanager.dynamoproxy import SerializingProxy

SECRET = "test-shared-secret-0123456789"


class ServerThread:
    """A real uvicorn server for an ASGI app, in a thread, on a loopback port."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Recorder:
    """What reached one participant: HTTP hits per action and effects (callback runs that succeeded)."""

    name: str
    fail_first: int = 0
    delay: float = 0.0
    hits: Counter[str] = field(default_factory=Counter)
    effects: list[tuple[str, str, float]] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def callback(self, action: str) -> Callable[[str, dict[str, Any]], Any]:
        def run(correlation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
            with self.lock:
                self.calls += 1
                failing = self.calls <= self.fail_first
            if self.delay:
                time.sleep(self.delay)
            if failing:
                raise RuntimeError(f"{self.name} injected failure")
            with self.lock:
                self.effects.append((action, correlation_id, time.time()))
            return {"undone_by": self.name, "attempt": payload.get("attempt")}

        return run

    def count(self, action: str = "rollback") -> int:
        with self.lock:
            return sum(1 for a, _, _ in self.effects if a == action)


def participant_app(recorder: Recorder, secret: str = SECRET) -> Any:
    """A FastAPI service exposing the participant endpoints, counting every HTTP hit before verification."""
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(participant_router(secret, recorder.callback("rollback"), recorder.callback("commit")))

    @app.middleware("http")
    async def count_hits(request: Any, call_next: Any) -> Any:
        action = request.url.path.split("/")[2] if request.url.path.startswith("/corrtrace/") else "other"
        with recorder.lock:
            recorder.hits[action] += 1
        return await call_next(request)

    return app


@pytest.fixture()
def servers() -> Iterator[Callable[[Any, int], ServerThread]]:
    started: list[ServerThread] = []

    def start(app: Any, port: int) -> ServerThread:
        server = ServerThread(app, port).start()
        started.append(server)
        return server

    yield start
    for server in started:  # ask all to exit first: they wind down in parallel
        server.server.should_exit = True
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def dynamodb_url(_moto_session: str) -> Iterator[str]:
    proxy = SerializingProxy(_moto_session)
    yield proxy.url
    proxy.server.shutdown()


@pytest.fixture()
def settings(moto_url: str, dynamodb_url: str) -> TxManagerSettings:
    """Fast retries, short leases and a table of its own on the test's moto server (DynamoDB via the proxy)."""
    return TxManagerSettings(
        table_name="corrtrace-tx-test",
        dynamodb_endpoint=dynamodb_url,
        sns_endpoint=moto_url,
        secret=SECRET,
        max_attempts=4,
        backoff_initial=0.05,
        backoff_max=0.2,
        participant_timeout=3.0,
        lease_margin=1.0,
        poll_interval=0.05,
        resume_interval=0,
        slow_retry_for=0,  # the slow background retry is tested on its own (test_slow_participants.py)
    )


@pytest.fixture()
def channel_settings(settings: TxManagerSettings, moto_url: str, free_port: Callable[[], int]) -> TxManagerSettings:
    """A failure table (or queue) of its own on moto, and the manager's URL fixed before the manager runs."""
    suffix = uuid.uuid4().hex[:8]
    return replace(
        settings,
        failure_target=f"failures-{suffix}",
        failure_dlq=f"failures-{suffix}-dlq",
        failure_endpoint=moto_url,
        manager_url=f"http://127.0.0.1:{free_port()}",
    )


@pytest.fixture()
def store(settings: TxManagerSettings) -> Store:
    store = Store(settings)
    assert store.create_table() is True
    return store


@dataclass
class Mesh:
    """A manager and a set of participants, all real HTTP servers."""

    manager: ServerThread
    client: TxManagerClient
    recorders: dict[str, Recorder]
    urls: dict[str, str]

    def register(self, correlation_id: str, *names: str) -> None:
        for name in names:
            base = self.urls[name]
            self.client.register(
                correlation_id, name, f"{base}/corrtrace/rollback/{{id}}", f"{base}/corrtrace/commit/{{id}}"
            )

    def wait(self, correlation_id: str, states: tuple[str, ...], timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            status = self.client.status(correlation_id)
            if status["state"] in states:
                return status
            if time.time() > deadline:
                raise AssertionError(f"transaction stuck in {status['state']}: {status}")
            time.sleep(0.05)


@pytest.fixture()
def mesh(
    settings: TxManagerSettings, store: Store, servers: Callable[[Any, int], ServerThread], free_port: Callable[[], int]
) -> Iterator[Callable[..., Mesh]]:
    """``mesh(a=Recorder(...), b=...)`` starts those participants and a manager in front of them."""
    clients: list[TxManagerClient] = []

    def build(**recorders: Recorder) -> Mesh:
        urls = {name: servers(participant_app(rec), free_port()).url for name, rec in recorders.items()}
        manager = servers(create_app(settings, store=store), free_port())
        client = TxManagerClient(manager.url, SECRET, timeout=30)
        clients.append(client)
        return Mesh(manager, client, recorders, urls)

    yield build
    for client in clients:
        client.close()


def signed_get(url: str, path: str, secret: str = SECRET) -> httpx.Response:
    from corrtrace.signing import sign_request

    return httpx.get(url + path, headers=sign_request(secret, "GET", path, b""))


def run(coro: Any) -> Any:
    return asyncio.run(coro)
