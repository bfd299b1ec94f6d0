"""Drive a triggered rollback or commit to its end: call each participant in turn, retry with backoff, resume.

Order: a rollback calls participants in reverse order of participation (undo the last step first), a commit in
order. The next participant is called only when the previous one has reached a final state (succeeded, or
failed after ``max_attempts``), so the order holds across manager instances too.

Guarantees: a participant whose call is recorded as succeeded is never called again, by any instance, after
any restart (every call is claimed by a conditional write first). The calls that can repeat are a call in
flight when its manager dies (its lease expires and the call is made again) and a call that timed out (state
``unknown``: the participant may have done the work; it is called again, never recorded ``failed`` for it).
Every call carries an ``Idempotency-Key`` (action, correlation ID, participant) by which participant endpoints
built with ``participant_router`` / ``participant_blueprint`` dedupe those repeats.

A participant still failing after ``max_attempts`` is *parked*: retried in the background with a slow backoff
(``slow_retry_*``) when the periodic sweep finds it due, so an outage of minutes heals by itself.
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
from corrtrace.txmanager import eventlog
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
    UNKNOWN,
    ConflictError,
    Participant,
    PState,
    Store,
    Transaction,
    TxState,
)

from corrtrace.ids import safe_excerpt
from corrtrace.signing import sign_request

RETRYABLE_STATUS = frozenset({408, 425, 429})
IDEMPOTENCY_HEADER = "Idempotency-Key"
NOT_DELIVERED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # the request never left
# transport errors after which the request may have reached the participant (its outcome is unknown)
MAYBE_DELIVERED = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def idempotency_key(action: str, correlation_id: str, service: str) -> str:
    """The key of one participant's rollback or commit in one transaction: the same on every retry."""
    return f"{action}:{correlation_id}:{service}"


@dataclass(frozen=True)
class CallResult:
    """What one call to a participant came to."""

    ok: bool
    retryable: bool
    status: int | None
    error: str | None
    duration_ns: int
    maybe_done: bool = False  # timed out or cut off after sending: the participant may have done the work


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
        self._seen: set[str] | None = None  # unfinished at the previous sweep (None: no sweep yet)

    # -- scheduling -------------------------------------------------------------------------------------------
    def kick(self, correlation_id: str, current: Transaction | None = None) -> None:
        """Make sure a task is driving this transaction (a running one re-checks once more when it ends).

        ``current``: the transaction as a write just returned it, which spares the first pass a read.
        """
        if correlation_id in self._tasks:
            self._dirty.add(correlation_id)
            return
        self._tasks[correlation_id] = asyncio.create_task(self._drive(correlation_id, current))

    async def _drive(self, correlation_id: str, current: Transaction | None) -> None:
        try:
            while True:
                self._dirty.discard(correlation_id)
                try:
                    await self.run(correlation_id, current)
                    current = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    eventlog.note(
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
        """Pick up transactions with work left: at start every one (after a restart), later those left unfinished
        for a whole sweep interval (a stopped pass, a due slow retry, one another instance abandoned).

        A transaction that became unfinished since the last sweep is most likely being driven right now, here or
        by another live instance: driving it twice would only add conflicting claims and polls on the table.
        """
        ids = await asyncio.to_thread(lambda: list(self.store.unfinished()))
        seen, self._seen = self._seen, set(ids)
        due = [cid for cid in ids if cid not in self._tasks and (seen is None or cid in seen)]
        for correlation_id in due:
            self.kick(correlation_id)
        if due:
            eventlog.note(None, f"resuming {len(due)} unfinished transaction(s)", count=len(due))
        return len(due)

    async def end_expired(self) -> int:
        """End open transactions older than ``open_ttl``: mark them expired, or roll them back
        (``open_ttl_action``). Called by the periodic sweep."""
        ttl = self.settings.open_ttl
        if ttl <= 0:
            return 0
        ids = await asyncio.to_thread(lambda: list(self.store.open_since_before(time.time() - ttl)))
        for correlation_id in ids:
            if self.settings.open_ttl_action == "rollback":
                try:
                    tx, started = await asyncio.to_thread(
                        self.store.begin, correlation_id, ROLLBACK, f"open longer than open_ttl ({ttl:g} s)", "ttl"
                    )
                except ConflictError:
                    continue
                if started:
                    eventlog.note(correlation_id, f"open longer than {ttl:g} s: rolling it back")
                    self.kick(correlation_id, tx)
            elif await asyncio.to_thread(self.store.expire, correlation_id):
                eventlog.note(correlation_id, f"open longer than {ttl:g} s: marked expired")
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
    def done_for_now(self, p: Participant) -> bool:
        """Final, or out of its fast budget (a parked one waits for the sweep): the next participant may go."""
        if p.state == UNKNOWN:  # out of budget, or with no retry left (next_attempt_at 0)
            return p.attempts >= self.settings.max_attempts or p.next_attempt_at <= 0
        return p.state in TERMINAL

    @staticmethod
    def _due(p: Participant) -> bool:
        return p.parked and p.next_attempt_at <= time.time()

    async def run(self, correlation_id: str, current: Transaction | None = None) -> None:
        """Bring the transaction as far as it can go now: every participant final (or parked), then the
        transaction; a parked participant whose slow retry is due reopens it."""
        tx, participants = current, None
        if tx is None:
            tx, participants = await asyncio.to_thread(self.store.snapshot, correlation_id)
        if tx is None or tx.action is None:
            return
        if tx.unfinished and not tx.active:
            if participants is None:
                participants = await asyncio.to_thread(self.store.participants, correlation_id)
            if any(self._due(p) for p in participants):
                await asyncio.to_thread(self.store.reopen, correlation_id, tx.action)
                tx = await asyncio.to_thread(self.store.get, correlation_id) or tx
        if tx.active:
            while True:
                if participants is None:
                    participants = await asyncio.to_thread(self.store.participants, correlation_id)
                left = [p for p in participants if not self.done_for_now(p) or self._due(p)]
                if not left:
                    break
                for participant in reversed(left) if tx.action == ROLLBACK else left:
                    await self._settle_participant(tx, participant)
                participants = None
            tx = await self._finish(tx, participants) or await asyncio.to_thread(self.store.get, correlation_id) or tx
        if tx.unfinished and not tx.active:
            if participants is None:
                participants = await asyncio.to_thread(self.store.participants, correlation_id)
            parked = any(p.parked for p in participants)
            if tx.state == FAILED and not tx.notified:
                if not await asyncio.to_thread(self.notifier.failure, tx, participants):
                    return
                await asyncio.to_thread(self.store.mark_notified, correlation_id, keep_unfinished=parked)
            elif not parked:
                await asyncio.to_thread(self.store.clear_unfinished, correlation_id)

    async def _finish(self, tx: Transaction, participants: list[Participant]) -> Transaction | None:
        if tx.action is None:
            raise ValueError(f"transaction {tx.correlation_id} has no action to finish")
        failed = [p.service for p in participants if p.state == FAILED]
        unknown = [p.service for p in participants if p.state == UNKNOWN]
        final = TxState.FAILED if failed else TxState.UNKNOWN if unknown else DONE_STATE[tx.action]
        parked = [p.service for p in participants if p.parked]
        keep = bool(parked) or bool(failed and self.notifier.topic_arn and not tx.notified)
        finished = await asyncio.to_thread(self.store.finish, tx.correlation_id, tx.action, final, keep_unfinished=keep)
        if finished is not None:
            outcome = "failure" if failed else "unknown" if unknown else "success"
            eventlog.outcome(
                tx.action,
                outcome,
                tx.correlation_id,
                None,
                f"{tx.action} of {tx.correlation_id} finished: {final} ({len(participants)} participant(s), "
                f"{len(failed)} failed, {len(unknown)} unknown, {len(parked)} to retry in the background)",
                level=logging.INFO if outcome == "success" else logging.ERROR if failed else logging.WARNING,
                state=str(final),
                participants=len(participants),
                failed=",".join(failed) or None,
                unknown=",".join(unknown) or None,
            )
        return finished

    async def _settle_participant(self, tx: Transaction, participant: Participant) -> None:
        """Loop until this participant is final (or parked): claim when due, wait while another holder's lease
        runs. A parked participant gets one attempt when its slow retry is due."""
        if participant.parked:
            if self._due(participant):
                claimed = await asyncio.to_thread(
                    self.store.claim, tx.correlation_id, participant.service, self.owner, self.settings.lease_seconds
                )
                if claimed is not None:
                    await self._attempt(tx, claimed)
            return
        p: Participant | None = participant
        wait = self.settings.poll_interval  # while another caller holds it: doubling, so waiting costs few reads
        while p is not None and not self.done_for_now(p):
            now = time.time()
            if p.state == IN_PROGRESS and p.lease_until >= now:
                await asyncio.sleep(min(wait, p.lease_until - now + 0.01))
                wait = min(2 * wait, self.settings.lease_seconds)
                p = await asyncio.to_thread(self.store.participant, tx.correlation_id, p.service)
                continue
            if p.state != IN_PROGRESS and p.next_attempt_at > now:
                await asyncio.sleep(p.next_attempt_at - now)
            claimed = await asyncio.to_thread(
                self.store.claim, tx.correlation_id, p.service, self.owner, self.settings.lease_seconds
            )
            if claimed is None:  # another caller got it first: look again later
                await asyncio.sleep(wait)
                wait = min(2 * wait, self.settings.lease_seconds)
            settled = await self._attempt(tx, claimed) if claimed is not None else None
            p = settled or await asyncio.to_thread(self.store.participant, tx.correlation_id, p.service)

    def _next_state(self, p: Participant, result: CallResult) -> tuple[PState, float, bool]:
        """(state, next attempt time, parked) after this call: retry soon, retry slowly, or stop."""
        if result.ok:
            return SUCCEEDED, 0.0, False
        state = UNKNOWN if result.maybe_done else FAILED
        if not result.retryable:
            return state, 0.0, False
        now = time.time()
        if p.attempts < self.settings.max_attempts:
            delay = self.settings.backoff(p.attempts) * random.uniform(0.5, 1.0)
            return (UNKNOWN if result.maybe_done else PENDING), now + delay, False
        since = p.parked_since or now
        if self.settings.slow_retry_for > 0 and now - since < self.settings.slow_retry_for:
            delay = self.settings.slow_backoff(p.attempts - self.settings.max_attempts) * random.uniform(0.8, 1.0)
            return state, now + delay, True
        return state, 0.0, False

    async def _attempt(self, tx: Transaction, p: Participant) -> Participant | None:
        """Make the claimed call and record its result; the participant as stored, None if the lease was lost."""
        if tx.action is None:
            raise ValueError(f"transaction {tx.correlation_id} has no action to run")
        action, cid = tx.action, tx.correlation_id
        url = p.rollback_url if action == ROLLBACK else p.commit_url
        if url is None:
            skipped = await asyncio.to_thread(self.store.settle, cid, p.service, p.lease_owner or "", SKIPPED)
            eventlog.outcome(action, "success", cid, p.service, f"{p.service} has no {action} endpoint; skipped")
            return skipped
        result = await self.call(tx, p, url)
        labels: dict[str, Any] = {"attempt": p.attempts, "status": result.status, "duration_ns": result.duration_ns}
        state, next_at, parked = self._next_state(p, result)
        settled = await asyncio.to_thread(
            self.store.settle,
            cid,
            p.service,
            p.lease_owner or "",
            state,
            status=result.status,
            error=result.error,
            next_attempt_at=next_at,
            parked=parked,
        )
        if settled is None:
            message = f"lost the lease on {p.service} during the call; its new holder decides"
            eventlog.note(cid, message, level=logging.WARNING)
            return None
        retry = f"; retry in {next_at - time.time():.2f}s" if next_at else ""
        if state == SUCCEEDED:
            eventlog.outcome(action, "success", cid, p.service, f"{action} of {p.service} succeeded", **labels)
        elif state in (PENDING, UNKNOWN):
            eventlog.outcome(
                action,
                "unknown",
                cid,
                p.service,
                f"{action} of {p.service}: {result.error}, outcome unknown{retry}"
                if state == UNKNOWN
                else f"{action} of {p.service} failed ({result.error}){retry}",
                level=logging.WARNING,
                **labels,
            )
        else:
            eventlog.outcome(
                action,
                "failure",
                cid,
                p.service,
                f"{action} of {p.service} failed after {p.attempts} attempt(s): {result.error}"
                + (f"{retry} (slow background retry)" if parked else ""),
                level=logging.ERROR,
                **labels,
            )
        return settled

    async def call(self, tx: Transaction, p: Participant, url: str) -> CallResult:
        """One signed POST to the participant, bounded by ``participant_timeout`` end to end."""
        target = httpx.URL(url.replace("{id}", tx.correlation_id))
        key = idempotency_key(str(tx.action), tx.correlation_id, p.service)
        body = json.dumps(
            {
                "correlation_id": tx.correlation_id,
                "action": tx.action,
                "service": p.service,
                "reason": tx.reason,
                "source": tx.source,
                "attempt": p.attempts,
                "idempotency_key": key,
            }
        ).encode()
        headers = sign_request(self._secret, "POST", target.path, body)
        headers.update(
            {"Content-Type": "application/json", "X-Correlation-ID": tx.correlation_id, IDEMPOTENCY_HEADER: key}
        )
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.settings.participant_timeout):
                response = await self._http.post(target, content=body, headers=headers)
        except NOT_DELIVERED as exc:
            return CallResult(False, True, None, type(exc).__name__, time.perf_counter_ns() - started)
        except (TimeoutError, *MAYBE_DELIVERED) as exc:
            error = "timed out" if isinstance(exc, TimeoutError | httpx.TimeoutException) else type(exc).__name__
            return CallResult(False, True, None, error, time.perf_counter_ns() - started, maybe_done=True)
        except httpx.HTTPError as exc:
            return CallResult(False, True, None, f"{type(exc).__name__}", time.perf_counter_ns() - started)
        duration = time.perf_counter_ns() - started
        status = response.status_code
        if 200 <= status < 300:
            return CallResult(True, False, status, None, duration)
        retryable = status >= 500 or status in RETRYABLE_STATUS
        return CallResult(False, retryable, status, f"HTTP {status}", duration)


__all__ = ["COMMIT", "IDEMPOTENCY_HEADER", "ROLLBACK", "CallResult", "FanOut", "idempotency_key"]
