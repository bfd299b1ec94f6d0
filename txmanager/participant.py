"""The participant side: verified ``POST /corrtrace/rollback/{id}`` and ``/corrtrace/commit/{id}`` endpoints
for FastAPI (``participant_router``) and Flask (``participant_blueprint``).

Each endpoint checks the manager's signature first (401 otherwise, callback untouched), then runs the service's
callback ``(correlation_id, payload)`` at most once per (action, correlation ID) in this process: a repeated
call, such as the one a manager makes again after dying mid-call, answers 200 with ``"duplicate": true``
without running the callback again. A callback that raises answers 500 and is not recorded, so the manager's
retry runs it again. The ledger lives in memory: a service that restarts between the two calls must also make
its callback idempotent in its own store (pass a ``Ledger`` subclass backed by that store to get both).

(No ``from __future__ import annotations`` here: FastAPI must resolve ``Request`` from the function's scope.)
"""

import asyncio
import inspect
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from corrtrace.txmanager.auth import Verifier

from corrtrace.context import bind_correlation_id
from corrtrace.ids import is_valid
from corrtrace.signing import NonceCache, SignatureError

log = logging.getLogger("corrtrace.txmanager.participant")
Callback = Callable[[str, dict[str, Any]], Any]
ROLLBACK_PATH = "/corrtrace/rollback/{id}"
COMMIT_PATH = "/corrtrace/commit/{id}"
MAX_BODY = 65536


class Ledger:
    """Which (action, correlation ID) already ran in this process, and what it returned."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._done: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._alocks: dict[tuple[str, str], asyncio.Lock] = {}
        self._guard = threading.Lock()
        self._max = max_entries

    def lookup(self, key: tuple[str, str]) -> tuple[bool, Any]:
        with self._guard:
            if key in self._done:
                return True, self._done[key]
            return False, None

    def record(self, key: tuple[str, str], result: Any) -> None:
        with self._guard:
            self._done[key] = result
            while len(self._done) > self._max:
                self._done.popitem(last=False)
            self._locks.pop(key, None)
            self._alocks.pop(key, None)

    def run(self, key: tuple[str, str], fn: Callable[[], Any]) -> tuple[Any, bool]:
        """Run ``fn`` once for ``key`` (threads wait for a running one); returns (result, was_duplicate)."""
        seen, result = self.lookup(key)
        if seen:
            return result, True
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            seen, result = self.lookup(key)
            if seen:
                return result, True
            result = fn()
            self.record(key, result)
            return result, False

    async def arun(self, key: tuple[str, str], fn: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """``run`` for coroutines (one event loop)."""
        seen, result = self.lookup(key)
        if seen:
            return result, True
        with self._guard:
            lock = self._alocks.setdefault(key, asyncio.Lock())
        async with lock:
            seen, result = self.lookup(key)
            if seen:
                return result, True
            result = await fn()
            self.record(key, result)
            return result, False


class _Endpoint:
    """Framework-independent checks shared by the router and the blueprint."""

    def __init__(
        self,
        secret: str,
        callbacks: dict[str, Callback | None],
        ledger: Ledger | None,
        nonces: NonceCache | None,
        max_body: int,
    ) -> None:
        self.verifier = Verifier(secret, nonces=nonces)
        self.callbacks = callbacks
        self.ledger = ledger if ledger is not None else Ledger()
        self.max_body = max_body

    def precheck(
        self, action: str, correlation_id: str, method: str, path: str, body: bytes, headers: Any
    ) -> tuple[int, dict[str, Any]] | tuple[None, dict[str, Any]]:
        """(status, error body) to answer now, or (None, payload) when the callback may run."""
        if len(body) > self.max_body:
            return 413, {"error": "body too large", "limit": self.max_body}
        try:
            self.verifier.check(method, path, body, dict(headers.items()))
        except SignatureError as exc:
            log.warning("refused a %s call: %s", action, exc, extra={"labels": {"refused_action": action}})
            return 401, {"error": "unauthorized", "detail": str(exc)}
        if not is_valid(correlation_id):
            return 400, {"error": "invalid correlation id"}
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}
        if not isinstance(payload, dict):
            return 400, {"error": "body must be a JSON object"}
        if self.callbacks.get(action) is None:
            return 404, {"error": f"this service has no {action} handler"}
        return None, payload

    def failed(self, action: str, correlation_id: str) -> tuple[int, dict[str, Any]]:
        log.exception(
            "%s callback failed", action, extra={"correlation_id": correlation_id, "event.action": action}
        )
        return 500, {"error": f"{action} failed", "correlation_id": correlation_id}

    @staticmethod
    def done(action: str, correlation_id: str, result: Any, duplicate: bool) -> tuple[int, dict[str, Any]]:
        try:  # the work is done and recorded: an odd return value must not turn it into a 500
            json.dumps(result)
        except (TypeError, ValueError):
            result = repr(result)[:200]
        return 200, {"correlation_id": correlation_id, "action": action, "duplicate": duplicate, "result": result}


def participant_router(
    secret: str,
    on_rollback: Callback,
    on_commit: Callback | None = None,
    *,
    ledger: Ledger | None = None,
    nonces: NonceCache | None = None,
    max_body: int = MAX_BODY,
) -> Any:
    """A FastAPI ``APIRouter`` with the verified rollback and commit endpoints (sync or async callbacks)."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    endpoint = _Endpoint(secret, {"rollback": on_rollback, "commit": on_commit}, ledger, nonces, max_body)
    router = APIRouter()

    async def handle(action: str, correlation_id: str, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return JSONResponse({"error": "body too large", "limit": max_body}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                break
        status, data = endpoint.precheck(action, correlation_id, "POST", request.url.path, body, request.headers)
        if status is not None:
            return JSONResponse(data, status_code=status)
        callback = endpoint.callbacks[action]
        assert callback is not None
        key = (action, correlation_id)
        try:
            with bind_correlation_id(correlation_id):
                if inspect.iscoroutinefunction(callback):
                    result, dup = await endpoint.ledger.arun(key, lambda: callback(correlation_id, data))
                else:
                    result, dup = await run_in_threadpool(
                        endpoint.ledger.run, key, lambda: callback(correlation_id, data)
                    )
        except Exception:
            status, data = endpoint.failed(action, correlation_id)
            return JSONResponse(data, status_code=status)
        status, data = endpoint.done(action, correlation_id, result, dup)
        return JSONResponse(data, status_code=status)

    @router.post(ROLLBACK_PATH.replace("{id}", "{correlation_id}"))
    async def rollback(correlation_id: str, request: Request) -> JSONResponse:
        return await handle("rollback", correlation_id, request)

    @router.post(COMMIT_PATH.replace("{id}", "{correlation_id}"))
    async def commit(correlation_id: str, request: Request) -> JSONResponse:
        return await handle("commit", correlation_id, request)

    return router


def participant_blueprint(
    secret: str,
    on_rollback: Callback,
    on_commit: Callback | None = None,
    *,
    ledger: Ledger | None = None,
    nonces: NonceCache | None = None,
    max_body: int = MAX_BODY,
    name: str = "corrtrace_participant",
) -> Any:
    """A Flask ``Blueprint`` with the same verified endpoints (sync callbacks)."""
    from flask import Blueprint, jsonify, request

    endpoint = _Endpoint(secret, {"rollback": on_rollback, "commit": on_commit}, ledger, nonces, max_body)
    blueprint = Blueprint(name, __name__)

    def handle(action: str, correlation_id: str) -> Any:
        if request.content_length is not None and request.content_length > max_body:
            return jsonify({"error": "body too large", "limit": max_body}), 413
        body = request.stream.read(max_body + 1)
        status, data = endpoint.precheck(action, correlation_id, "POST", request.path, body, request.headers)
        if status is not None:
            return jsonify(data), status
        callback = endpoint.callbacks[action]
        assert callback is not None
        try:
            with bind_correlation_id(correlation_id):
                result, dup = endpoint.ledger.run((action, correlation_id), lambda: callback(correlation_id, data))
        except Exception:
            status, data = endpoint.failed(action, correlation_id)
            return jsonify(data), status
        status, data = endpoint.done(action, correlation_id, result, dup)
        return jsonify(data), status

    @blueprint.post(ROLLBACK_PATH.replace("{id}", "<correlation_id>"))
    def rollback(correlation_id: str) -> Any:
        return handle("rollback", correlation_id)

    @blueprint.post(COMMIT_PATH.replace("{id}", "<correlation_id>"))
    def commit(correlation_id: str) -> Any:
        return handle("commit", correlation_id)

    return blueprint
