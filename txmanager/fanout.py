"""Drive a triggered rollback or commit to its end: call each participant in turn, retry with backoff, resume.

Order: a rollback calls participants in reverse order of participation (undo the last step first), a commit in
order. The next participant is called only when the previous one has reached a final state (succeeded, or
failed after ``max_attempts``), so the order holds across manager instances too.

Guarantees: a participant whose call is recorded as succeeded is never called again, by any instance, after
any restart (every call is claimed by a conditional write first). The one call that can repeat is a call in
flight when its manager dies: its lease expires and the call is made again (at least once). Participant
endpoints built with ``participant_router`` / ``participant_blueprint`` dedupe that repeat by correlation ID.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from corrtrace.txmanager import events
from corrtrace.txmanager.notify import Notifier
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.store import (
    COMMIT,
    DONE_STATE,
    FAILED,
    IN_PROGRESS,
    PENDING,
    ROLLBACK,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    Participant,
    Store,
    Transaction,
)

from corrtrace.ids import safe_excerpt
from corrtrace.signing import sign_request

RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class CallResult:
    """What one call to a participant came to."""

    ok: bool
    retryable: bool
    status: int | None
    error: str | None
    duration_ns: int


def _instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FanOut:
    """Runs at most one fan-out task per transaction in this process; instances coordinate through the store."""

    def __init__(
        self,
        settings: TxManagerSettings,
        store: Store,
        notifier: Notifier,
        *,
        secret: str,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.owner = _instance_id()
        self._secret = secret
        self._http = http or httpx.AsyncClient(timeout=settings.participant_timeout, follow_redirects=False)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    # -- scheduling -------------------------------------------------------------------------------------------
    def kick(self, correlation_id: str) -> None:
        """Make sure a task is driving this transaction (a running one re-checks once more when it ends)."""
        if correlation_id in self._tasks:
            self._dirty.add(correlation_id)
            return
        self._tasks[correlation_id] = asyncio.create_task(self._drive(correlation_id))

    async def _drive(self, correlation_id: str) -> None:
        try:
            while True:
                self._dirty.discard(correlation_id)
                try:
                    await self.run(correlation_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    events.note(
                        correlation_id,
                        f"fan-out pass stopped by {type(exc).__name__}: {safe_excerpt(str(exc), 200)}; "
                        "it resumes on the next sweep",
                        level=logging.ERROR,
                    )
                    return
                if correlation_id not in self._dirty:
                    return
        finally:
            self._tasks.pop(correlation_id, None)

    async def resume(self) -> int:
        """Pick up every transaction with work left (after a restart, or one another instance abandoned)."""
        ids = await asyncio.to_thread(lambda: list(self.store.unfinished()))
        for correlation_id in ids:
            self.kick(correlation_id)
        if ids:
            events.note(None, f"resuming {len(ids)} unfinished transaction(s)", count=len(ids))
        return len(ids)

    async def idle(self) -> None:
        """Wait until no fan-out task is running in this process."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        await self._http.aclose()

    # -- one pass over a transaction ---------------------------------------------------------------------------
    async def run(self, correlation_id: str) -> None:
        """Bring the transaction as far as it can go now: every participant final, then the transaction."""
        tx = await asyncio.to_thread(self.store.get, correlation_id)
        if tx is None or tx.action is None:
            return
        if tx.active:
            while True:
                participants = await asyncio.to_thread(self.store.participants, correlation_id)
                left = [p for p in participants if p.state not in TERMINAL]
                if not left:
                    break
                for participant in reversed(left) if tx.action == ROLLBACK else left:
                    await self._settle_participant(tx, participant)
            await self._finish(tx, participants)
            tx = await asyncio.to_thread(self.store.get, correlation_id) or tx
        if tx.unfinished and not tx.active:
            if tx.state == FAILED:
                participants = await asyncio.to_thread(self.store.participants, correlation_id)
                if not await asyncio.to_thread(self.notifier.failure, tx, participants):
                    return
            await asyncio.to_thread(self.store.clear_unfinished, correlation_id)

    async def _finish(self, tx: Transaction, participants: list[Participant]) -> None:
        assert tx.action is not None
        failed = [p.service for p in participants if p.state == FAILED]
        final = FAILED if failed else DONE_STATE[tx.action]
        keep = bool(failed and self.notifier.topic_arn)
        if await asyncio.to_thread(self.store.finish, tx.correlation_id, tx.action, final, keep_unfinished=keep):
            events.outcome(
                tx.action,
                "failure" if failed else "success",
                tx.correlation_id,
                None,
                f"{tx.action} of {tx.correlation_id} finished: {final} "
                f"({len(participants)} participant(s), {len(failed)} failed)",
                level=logging.ERROR if failed else logging.INFO,
                state=final,
                participants=len(participants),
                failed=",".join(failed) or None,
            )

    async def _settle_participant(self, tx: Transaction, participant: Participant) -> None:
        """Loop until this participant is final: claim when due, wait while another holder's lease runs."""
        p: Participant | None = participant
        while p is not None and p.state not in TERMINAL:
            now = time.time()
            if p.state == IN_PROGRESS and p.lease_until >= now:
                await asyncio.sleep(min(self.settings.poll_interval, p.lease_until - now + 0.01))
            elif p.state == PENDING and p.next_attempt_at > now:
                await asyncio.sleep(p.next_attempt_at - now)
            else:
                claimed = await asyncio.to_thread(
                    self.store.claim, tx.correlation_id, p.service, self.owner, self.settings.lease_seconds
                )
                if claimed is not None:
                    await self._attempt(tx, claimed)
            p = await asyncio.to_thread(self.store.participant, tx.correlation_id, p.service)

    async def _attempt(self, tx: Transaction, p: Participant) -> None:
        """Make the claimed call and record its result (success, retry later, or final failure)."""
        assert tx.action is not None
        action, cid = tx.action, tx.correlation_id
        url = p.rollback_url if action == ROLLBACK else p.commit_url
        if url is None:
            await asyncio.to_thread(self.store.settle, cid, p.service, p.lease_owner or "", SKIPPED)
            events.outcome(action, "success", cid, p.service, f"{p.service} has no {action} endpoint; skipped")
            return
        result = await self.call(tx, p, url)
        labels: dict[str, Any] = {"attempt": p.attempts, "status": result.status, "duration_ns": result.duration_ns}
        if result.ok:
            state, next_at = SUCCEEDED, 0.0
        elif result.retryable and p.attempts < self.settings.max_attempts:
            delay = self.settings.backoff(p.attempts) * random.uniform(0.5, 1.0)
            state, next_at = PENDING, time.time() + delay
        else:
            state, next_at = FAILED, 0.0
        kept = await asyncio.to_thread(
            self.store.settle,
            cid,
            p.service,
            p.lease_owner or "",
            state,
            status=result.status,
            error=result.error,
            next_attempt_at=next_at,
        )
        if not kept:
            message = f"lost the lease on {p.service} during the call; its new holder decides"
            events.note(cid, message, level=logging.WARNING)
            return
        if state == SUCCEEDED:
            events.outcome(action, "success", cid, p.service, f"{action} of {p.service} succeeded", **labels)
        elif state == PENDING:
            events.outcome(
                action,
                "unknown",
                cid,
                p.service,
                f"{action} of {p.service} failed ({result.error}); retry in {next_at - time.time():.2f}s",
                level=logging.WARNING,
                **labels,
            )
        else:
            events.outcome(
                action,
                "failure",
                cid,
                p.service,
                f"{action} of {p.service} failed for good after {p.attempts} attempt(s): {result.error}",
                level=logging.ERROR,
                **labels,
            )

    async def call(self, tx: Transaction, p: Participant, url: str) -> CallResult:
        """One signed POST to the participant, bounded by ``participant_timeout`` end to end."""
        target = httpx.URL(url.replace("{id}", tx.correlation_id))
        body = json.dumps(
            {
                "correlation_id": tx.correlation_id,
                "action": tx.action,
                "service": p.service,
                "reason": tx.reason,
                "source": tx.source,
                "attempt": p.attempts,
            }
        ).encode()
        headers = sign_request(self._secret, "POST", target.path, body)
        headers.update({"Content-Type": "application/json", "X-Correlation-ID": tx.correlation_id})
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.settings.participant_timeout):
                response = await self._http.post(target, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return CallResult(False, True, None, "timed out", time.perf_counter_ns() - started)
        except httpx.HTTPError as exc:
            return CallResult(False, True, None, f"{type(exc).__name__}", time.perf_counter_ns() - started)
        duration = time.perf_counter_ns() - started
        status = response.status_code
        if 200 <= status < 300:
            return CallResult(True, False, status, None, duration)
        retryable = status >= 500 or status in RETRYABLE_STATUS
        return CallResult(False, retryable, status, f"HTTP {status}", duration)


__all__ = ["COMMIT", "ROLLBACK", "CallResult", "FanOut"]
