"""The transaction manager's HTTP API (FastAPI). Every endpoint except ``/healthz`` needs a signed call.

``POST /transactions/{id}/participants``  register {service, rollback_url, commit_url}
``POST /transactions/{id}/rollback``      {reason, source}: 202, the fan-out runs in the background
``POST /transactions/{id}/commit``        {reason, source}: 202
``GET  /transactions/{id}``               the transaction and each participant's state

The routes are module-level (``router``) and find their store, fan-out and verifier in ``app.state.manager``,
which ``create_app`` builds; its lifespan runs the periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from corrtrace.txmanager import eventlog
from corrtrace.txmanager.auth import MAX_SKEW, Verifier, declares_more_than
from corrtrace.txmanager.discovery import Discover, default_discover
from corrtrace.txmanager.fanout import FanOut
from corrtrace.txmanager.notify import Notifier
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.store import COMMIT, ROLLBACK, Action, ConflictError, Store
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from corrtrace.ids import is_valid, safe_excerpt
from corrtrace.signing import NonceCache, SignatureError

SERVICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9\-_.:]{0,127}$"


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")) or len(value) > 2048 or any(c.isspace() for c in value):
        raise ValueError("expected an http(s) URL of at most 2048 characters")
    return value


class RegisterBody(BaseModel):
    service: str = Field(pattern=SERVICE_PATTERN)
    rollback_url: str
    commit_url: str | None = None

    @field_validator("rollback_url", "commit_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _check_url(value)


class TriggerBody(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)
    source: str | None = Field(default=None, max_length=256)
    retry_failed: bool = False  # an operator fixed a participant: give the failed ones a new attempt budget


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise HTTPException(422, detail=f"{where}: {first.get('msg', 'invalid')}") from None


@dataclass(frozen=True)
class Manager:
    """What the routes work with: one per app, in ``app.state.manager``."""

    settings: TxManagerSettings
    store: Store
    fanout: FanOut
    verifier: Verifier
    discover: Discover | None

    async def sweep(self) -> None:
        """Resume unfinished work and end expired transactions, every ``resume_interval`` (0: once, at start)."""
        while True:
            try:
                await self.fanout.resume()
                await self.fanout.end_expired()
            except Exception as exc:
                eventlog.note(None, f"resume sweep failed ({type(exc).__name__}); retrying", level=logging.ERROR)
            if self.settings.resume_interval <= 0:
                return
            await asyncio.sleep(self.settings.resume_interval)


def create_app(
    settings: TxManagerSettings,
    *,
    store: Store | None = None,
    notifier: Notifier | None = None,
    discover: Discover | None = None,
) -> FastAPI:
    """Build the manager. ``discover`` defaults to log-based discovery when the settings configure it."""
    secret = settings.resolved_secret()
    store = store or Store(settings)
    manager = Manager(
        settings=settings,
        store=store,
        fanout=FanOut(settings, store, notifier or Notifier(settings), secret=secret),
        verifier=Verifier(
            secret,
            nonces=NonceCache(ttl=2 * MAX_SKEW),
            shared=lambda nonce: store.remember_nonce(nonce, ttl=2 * MAX_SKEW),
        ),
        discover=discover if discover is not None else default_discover(settings),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(manager.sweep())
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await manager.fanout.aclose()

    app = FastAPI(title="corrtrace transaction manager", lifespan=lifespan)
    app.state.manager = manager
    app.include_router(router)
    return app


def _manager(request: Request) -> Manager:
    manager: Manager = request.app.state.manager
    return manager


async def _authenticated(request: Request, manager: Annotated[Manager, Depends(_manager)]) -> bytes:
    """Dependency: the raw body of a call whose signature, freshness and nonce check out (else 401)."""
    limit = manager.settings.max_body_bytes
    if declares_more_than(request.headers.get("content-length", ""), limit):
        raise HTTPException(413, detail=f"body over {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, detail=f"body over {limit} bytes")
    try:
        await asyncio.to_thread(manager.verifier.check, request.method, request.url.path, body, request.headers)
    except SignatureError as exc:
        where = safe_excerpt(request.url.path, 80)
        eventlog.note(None, f"refused {request.method} {where}: {exc}", level=logging.WARNING)
        raise HTTPException(401, detail=str(exc), headers={"WWW-Authenticate": "Corrtrace-HMAC"}) from None
    return body


def _valid_id(correlation_id: str) -> str:
    if not is_valid(correlation_id):
        raise HTTPException(400, detail="invalid correlation id")
    return correlation_id


ManagerDep = Annotated[Manager, Depends(_manager)]
SignedBody = Annotated[bytes, Depends(_authenticated)]
router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/transactions/{correlation_id}/participants")
async def register(correlation_id: str, manager: ManagerDep, body: SignedBody) -> JSONResponse:
    _valid_id(correlation_id)
    params: RegisterBody = _parse(RegisterBody, body)
    store = manager.store
    try:  # refused (409) during or after a commit
        participant, tx, created = await asyncio.to_thread(
            store.register, correlation_id, params.service, params.rollback_url, params.commit_url
        )
    except ConflictError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    if created and tx.action == ROLLBACK:
        await asyncio.to_thread(store.reopen, correlation_id)
        manager.fanout.kick(correlation_id)
    return JSONResponse(
        {"created": created, "participant": participant.as_dict(), "transaction": tx.as_dict()},
        status_code=201 if created else 200,
    )


@router.post("/transactions/{correlation_id}/rollback", status_code=202)
async def rollback(correlation_id: str, manager: ManagerDep, body: SignedBody) -> JSONResponse:
    return await _trigger(manager, ROLLBACK, _valid_id(correlation_id), body)


@router.post("/transactions/{correlation_id}/commit", status_code=202)
async def commit(correlation_id: str, manager: ManagerDep, body: SignedBody) -> JSONResponse:
    return await _trigger(manager, COMMIT, _valid_id(correlation_id), body)


@router.get("/transactions/{correlation_id}")
async def state(correlation_id: str, manager: ManagerDep, body: SignedBody) -> dict[str, Any]:
    _valid_id(correlation_id)
    tx, participants = await asyncio.to_thread(manager.store.snapshot, correlation_id)
    if tx is None:
        raise HTTPException(404, detail=f"no transaction {correlation_id}")
    due = [p.next_attempt_at for p in participants if p.parked]
    return {
        **tx.as_dict(),
        "next_attempt_at": min(due) if due else None,  # the next slow background retry
        "participants": [p.as_dict() for p in participants],
    }


async def _trigger(manager: Manager, action: Action, correlation_id: str, body: bytes) -> JSONResponse:
    params = _parse(TriggerBody, body)
    store = manager.store
    if action == ROLLBACK and manager.discover is not None:
        await _discover_if_needed(store, manager.discover, correlation_id)
    try:
        tx, started = await asyncio.to_thread(store.begin, correlation_id, action, params.reason, params.source)
    except ConflictError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    retried: list[str] = []
    if params.retry_failed and not started:
        retried = await asyncio.to_thread(store.retry_failed, correlation_id)
        if retried:
            await asyncio.to_thread(store.reopen, correlation_id, action)
    eventlog.note(
        correlation_id,
        f"{action} {'started' if started else 'requested again (duplicate)'}",
        retried=",".join(retried) or None,
        reason=safe_excerpt(params.reason or "", 120) or None,
        source=safe_excerpt(params.source or "", 60) or None,
        triggers=tx.triggers,
    )
    manager.fanout.kick(correlation_id, None if retried else tx)
    return JSONResponse({"started": started, "retried": retried, "transaction": tx.as_dict()}, status_code=202)


async def _discover_if_needed(store: Store, discover: Discover, correlation_id: str) -> None:
    if await asyncio.to_thread(store.participants, correlation_id):
        return
    try:
        found = await asyncio.to_thread(discover, correlation_id)
    except Exception as exc:
        eventlog.note(correlation_id, f"participant discovery failed: {type(exc).__name__}", level=logging.ERROR)
        raise HTTPException(
            503, detail="participant discovery failed (log store unreachable?); nothing was started, retry"
        ) from None
    reopen = False
    for p in found:
        _, tx, created = await asyncio.to_thread(
            store.register, correlation_id, p.service, p.rollback_url, p.commit_url, discovered=True
        )
        reopen = reopen or (created and tx.action == ROLLBACK)
    if reopen:  # an earlier trigger found nobody; these were logged since: roll them back too
        await asyncio.to_thread(store.reopen, correlation_id)
    eventlog.note(
        correlation_id,
        f"no participant registered; discovered {len(found)} from the logs",
        discovered=",".join(p.service for p in found) or None,
    )
