"""The participant side: verified ``POST /corrtrace/rollback/{id}`` and ``/corrtrace/commit/{id}`` endpoints
for FastAPI (``participant_router``) and Flask (``participant_blueprint``).

Each endpoint checks the manager's signature first (401 otherwise, callback untouched), then runs the service's
callback ``(correlation_id, payload)`` at most once per idempotency key (the manager's ``Idempotency-Key``
header, also in the signed body: action, correlation ID and participant): a repeated call, such as the one a
manager makes after a timeout or after dying mid-call, answers 200 with ``"duplicate": true`` without running
the callback again. A callback that raises answers 500 and is not recorded, so the manager's retry runs it again.
``Ledger`` (the default) remembers keys in memory, per process; ``SqliteLedger(path)`` keeps them in a file, so
they survive a restart and are shared by the worker processes of one host.

(No ``from __future__ import annotations`` here: FastAPI must resolve ``Request`` from the function's scope.)
"""

import asyncio
import contextlib
import inspect
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from corrtrace.txmanager.auth import Verifier, declares_more_than

from corrtrace.context import bind_correlation_id
from corrtrace.ids import is_valid
from corrtrace.signing import NonceCache, SignatureError

log = logging.getLogger("corrtrace.txmanager.participant")
Callback = Callable[[str, dict[str, Any]], Any]
ROLLBACK_PATH = "/corrtrace/rollback/{id}"
COMMIT_PATH = "/corrtrace/commit/{id}"
MAX_BODY = 65536
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 512


class Ledger:
    """Which idempotency keys already ran in this process, and what they returned (in memory, bounded)."""

    blocking = False  # True when lookup/acquire/record do I/O: the async path then runs them in a thread

    def __init__(self, max_entries: int = 100_000) -> None:
        self._done: OrderedDict[str, Any] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._alocks: dict[str, asyncio.Lock] = {}
        self._guard = threading.Lock()
        self._max = max_entries

    def lookup(self, key: str) -> tuple[bool, Any]:
        with self._guard:
            if key in self._done:
                return True, self._done[key]
            return False, None

    def acquire(self, key: str) -> tuple[bool, Any]:
        """Called with this process's lock for ``key`` held: (True, result) when it already ran, else (False,
        None) and the caller runs it. A shared ledger also waits here for another process running it."""
        return self.lookup(key)

    def release(self, key: str) -> None:
        """The run failed: let the next call run it again."""

    def record(self, key: str, result: Any) -> None:
        with self._guard:
            self._done[key] = result
            while len(self._done) > self._max:
                self._done.popitem(last=False)
            self._locks.pop(key, None)
            self._alocks.pop(key, None)

    def run(self, key: str, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """Run ``fn`` once for ``key`` (threads wait for a running one); returns (result, was_duplicate)."""
        seen, result = self.lookup(key)
        if seen:
            return result, True
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            seen, result = self.acquire(key)
            if seen:
                return result, True
            try:
                result = fn()
            except BaseException:
                self.release(key)
                raise
            self.record(key, result)
            return result, False

    async def arun(self, key: str, fn: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """``run`` for coroutines (one event loop)."""

        async def io(method: Callable[..., Any], *args: Any) -> Any:
            return await asyncio.to_thread(method, *args) if self.blocking else method(*args)

        seen, result = await io(self.lookup, key)
        if seen:
            return result, True
        with self._guard:
            lock = self._alocks.setdefault(key, asyncio.Lock())
        async with lock:
            seen, result = await io(self.acquire, key)
            if seen:
                return result, True
            try:
                result = await fn()
            except BaseException:
                await io(self.release, key)
                raise
            await io(self.record, key, result)
            return result, False


class SqliteLedger(Ledger):
    """A ledger in a SQLite file: keys survive a restart of the service and are shared by its processes.

    A key is marked ``running`` before the callback runs; another process receiving the same key meanwhile
    waits for it (up to ``stale_after`` seconds, after which the mark counts as left by a dead process). Keys
    are kept ``keep_seconds`` (longer than any retry of the manager: its slow retries stop after a day).
    """

    blocking = True

    def __init__(self, path: str | Path, *, stale_after: float = 300.0, keep_seconds: float = 30 * 86400.0) -> None:
        super().__init__(max_entries=0)
        self.path = Path(path)
        self.stale_after = stale_after
        self.keep_seconds = keep_seconds
        self._writes = 0
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, state TEXT NOT NULL, result TEXT, at REAL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def lookup(self, key: str) -> tuple[bool, Any]:
        with self._connect() as conn:
            row = conn.execute("SELECT result FROM ledger WHERE key = ? AND state = 'done'", (key,)).fetchone()
        return (True, json.loads(row[0])) if row else (False, None)

    def acquire(self, key: str) -> tuple[bool, Any]:
        while True:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT state, result, at FROM ledger WHERE key = ?", (key,)).fetchone()
                now = time.time()
                if row is not None and row[0] == "done":
                    conn.execute("COMMIT")
                    return True, json.loads(row[1])
                if row is None or now - row[2] > self.stale_after:
                    conn.execute("INSERT OR REPLACE INTO ledger VALUES (?, 'running', NULL, ?)", (key, now))
                    conn.execute("COMMIT")
                    return False, None
                conn.execute("COMMIT")
            time.sleep(0.05)  # another process is running it; bounded by stale_after

    def release(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM ledger WHERE key = ? AND state = 'running'", (key,))

    def record(self, key: str, result: Any) -> None:
        encoded = json.dumps(result, default=repr)
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO ledger VALUES (?, 'done', ?, ?)", (key, encoded, time.time()))
            self._writes += 1
            if self._writes % 1000 == 1:  # bounded: forget keys no manager can retry any more
                conn.execute("DELETE FROM ledger WHERE at < ?", (time.time() - self.keep_seconds,))
        with self._guard:
            self._locks.pop(key, None)
            self._alocks.pop(key, None)


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
    ) -> tuple[int | None, dict[str, Any], str]:
        """(status, error body, "") to answer now, or (None, payload, idempotency key) when the callback may run."""
        if len(body) > self.max_body:
            return 413, {"error": "body too large", "limit": self.max_body}, ""
        try:
            self.verifier.check(method, path, body, dict(headers.items()))
        except SignatureError as exc:
            log.warning("refused a %s call: %s", action, exc, extra={"labels": {"refused_action": action}})
            return 401, {"error": "unauthorized", "detail": str(exc)}, ""
        if not is_valid(correlation_id):
            return 400, {"error": "invalid correlation id"}, ""
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}, ""
        if not isinstance(payload, dict):
            return 400, {"error": "body must be a JSON object"}, ""
        if self.callbacks.get(action) is None:
            return 404, {"error": f"this service has no {action} handler"}, ""
        key = self.idempotency_key(action, correlation_id, payload, headers.get(IDEMPOTENCY_HEADER))
        if key is None:
            return 400, {"error": f"{IDEMPOTENCY_HEADER} does not match the signed call"}, ""
        return None, payload, key

    @staticmethod
    def idempotency_key(action: str, correlation_id: str, payload: dict[str, Any], header: str | None) -> str | None:
        """The signed body's key (the header must agree with it), else the header, else (action, correlation ID);
        None when it does not belong to this action and correlation ID."""
        signed = payload.get("idempotency_key")
        if signed is not None and (not isinstance(signed, str) or (header is not None and header != signed)):
            return None
        own = f"{action}:{correlation_id}"
        key = signed or header or own
        if len(key) > MAX_KEY_CHARS or not (key == own or key.startswith(own + ":")):
            return None
        return key

    def failed(self, action: str, correlation_id: str) -> tuple[int, dict[str, Any]]:
        log.exception("%s callback failed", action, extra={"correlation_id": correlation_id, "event.action": action})
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
        if declares_more_than(request.headers.get("content-length", ""), max_body):
            return JSONResponse({"error": "body too large", "limit": max_body}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                break
        status, data, key = endpoint.precheck(action, correlation_id, "POST", request.url.path, body, request.headers)
        callback = endpoint.callbacks.get(action)
        if status is not None or callback is None:
            return JSONResponse(data, status_code=status or 404)
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
        status, data, key = endpoint.precheck(action, correlation_id, "POST", request.path, body, request.headers)
        callback = endpoint.callbacks.get(action)
        if status is not None or callback is None:
            return jsonify(data), status or 404
        try:
            with bind_correlation_id(correlation_id):
                result, dup = endpoint.ledger.run(key, lambda: callback(correlation_id, data))
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
