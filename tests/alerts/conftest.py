"""A tiny real HTTP receiver standing in for the transaction manager: it verifies the corrtrace.signing
signature of every call (401 otherwise) and records the rollbacks it accepted."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from corrtrace.signing import NonceCache, SignatureError, verify_request
from tests.alerts.servers import start_uvicorn

SECRET = "alerts-test-secret"


@dataclass
class Receiver:
    url: str
    secret: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: int = 0

    def ids(self) -> list[str]:
        return [cid for cid, _ in self.calls]


def _app(receiver: Receiver) -> FastAPI:
    app = FastAPI()
    nonces = NonceCache()
    lock = threading.Lock()

    @app.post("/transactions/{correlation_id}/rollback")
    async def rollback(correlation_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify_request(receiver.secret, "POST", request.url.path, body, dict(request.headers), nonces=nonces)
        except SignatureError as exc:
            with lock:
                receiver.rejected += 1
            return JSONResponse({"error": str(exc)}, status_code=401)
        with lock:
            receiver.calls.append((correlation_id, json.loads(body or b"{}")))
        return JSONResponse({"correlation_id": correlation_id, "state": "rolled_back"})

    return app


@pytest.fixture()
def receiver(free_port: Callable[[], int]) -> Iterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}", SECRET)
    server, thread = start_uvicorn(_app(rec), port, lifespan="off")
    yield rec
    server.should_exit = True
    thread.join(timeout=5)
