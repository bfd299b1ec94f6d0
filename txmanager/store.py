"""Transaction state in DynamoDB: one item per transaction and one per participant, changed only by
conditional writes, so that concurrent triggers, several manager instances and restarts agree on who calls a
participant: a participant call is *claimed* (state ``in_progress`` plus a lease) before it is made, and only the
claimant may settle it.

Table layout (``pk``/``sk`` strings, one table):
``TX#<id>`` / ``TX``          the transaction: state, action, reason, source, counters, ``unfinished`` marker
``TX#<id>`` / ``P#<service>`` one participant: urls, order (``seq``), state, attempts, lease, next attempt time
``NONCE#<n>`` / ``N``         a signature nonce already used (replay protection shared by all instances; TTL)
A sparse index ``unfinished`` lists the transactions with work left (``rollback``/``commit``), which a
(re)starting manager resumes, and the ``open`` ones, which the periodic sweep ends when they outlive ``open_ttl``.
Finished items carry ``expires`` (DynamoDB TTL, enabled at creation) so the table does not grow forever.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError
from corrtrace.txmanager.settings import TxManagerSettings

from corrtrace.errors import CorrtraceError


class Action(StrEnum):
    ROLLBACK = "rollback"
    COMMIT = "commit"


class TxState(StrEnum):
    """A transaction's state (README "States")."""

    OPEN = "open"
    ROLLING_BACK = "rolling_back"
    COMMITTING = "committing"
    ROLLED_BACK = "rolled_back"
    COMMITTED = "committed"
    FAILED = "failed"  # a participant failed
    UNKNOWN = "unknown"  # none failed, but a participant's call timed out: it may or may not have done the work
    EXPIRED = "expired"  # open past ``open_ttl``, ended by the sweep


class PState(StrEnum):
    """A participant's state (README "States")."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # the last call timed out: done or not, only the participant knows; it is called again


ROLLBACK, COMMIT = Action.ROLLBACK, Action.COMMIT
ACTIVE_STATE = {ROLLBACK: TxState.ROLLING_BACK, COMMIT: TxState.COMMITTING}
DONE_STATE = {ROLLBACK: TxState.ROLLED_BACK, COMMIT: TxState.COMMITTED}
OPEN, EXPIRED, FAILED, UNKNOWN = TxState.OPEN, TxState.EXPIRED, PState.FAILED, PState.UNKNOWN
PENDING, IN_PROGRESS, SUCCEEDED, SKIPPED = PState.PENDING, PState.IN_PROGRESS, PState.SUCCEEDED, PState.SKIPPED
TERMINAL = frozenset({SUCCEEDED, FAILED, SKIPPED})
UNFINISHED_INDEX = "unfinished"
OPEN_MARKER = "open"
MAX_ERROR_CHARS = 300
T = TypeVar("T")

_ser = TypeSerializer()
_de = TypeDeserializer()


class ConflictError(CorrtraceError):
    """The transaction is already doing the other action (a commit cannot follow a rollback, nor the reverse)."""

    def __init__(self, transaction: Transaction) -> None:
        super().__init__(f"transaction {transaction.correlation_id} is already {transaction.state}")
        self.transaction = transaction


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _decode(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(Decimal(str(v)) if isinstance(v, float) else v) for k, v in values.items()}


class StoreError(CorrtraceError, RuntimeError):
    """The table holds something it never should (an item that vanished mid-operation)."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ("" for any other exception)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def if_condition_holds(write: Callable[[], T]) -> tuple[bool, T | None]:
    """Run one conditional write: (True, its result), or (False, None) when the condition did not hold.

    Every other error propagates. This is the single place that tells "someone else got there first" apart.
    """
    try:
        return True, write()
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False, None
        raise


@dataclass
class Participant:
    """A service that did work for the transaction, and how far its rollback or commit has got."""

    service: str
    rollback_url: str
    commit_url: str | None
    seq: int
    state: str = PENDING
    attempts: int = 0
    lease_owner: str | None = None
    settled_by: str | None = None
    lease_until: float = 0.0
    next_attempt_at: float = 0.0
    parked_since: float = 0.0
    last_error: str | None = None
    last_status: int | None = None
    discovered: bool = False
    registered_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Participant:
        data = _decode(item)
        return cls(
            service=data["service"],
            rollback_url=data["rollback_url"],
            commit_url=data.get("commit_url"),
            seq=int(data.get("seq", 0)),
            state=PState(data.get("state", PENDING)),
            attempts=int(data.get("attempts", 0)),
            lease_owner=data.get("lease_owner"),
            settled_by=data.get("settled_by"),
            lease_until=float(data.get("lease_until", 0)),
            next_attempt_at=float(data.get("next_attempt_at", 0)),
            parked_since=float(data.get("parked_since", 0)),
            last_error=data.get("last_error") or None,
            last_status=data.get("last_status") or None,
            discovered=bool(data.get("discovered", False)),
            registered_at=float(data.get("registered_at", 0)),
            updated_at=float(data.get("updated_at", 0)),
        )

    @property
    def parked(self) -> bool:
        """Out of its fast retry budget and waiting for a slow background retry (``next_attempt_at``)."""
        return self.state in (FAILED, UNKNOWN) and self.next_attempt_at > 0 and self.parked_since > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "rollback_url": self.rollback_url,
            "commit_url": self.commit_url,
            "order": self.seq,
            "state": str(self.state),
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "next_attempt_at": self.next_attempt_at or None,
            "discovered": self.discovered,
            "registered_at": self.registered_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Transaction:
    """One correlation ID's transaction: ``open`` until a rollback or commit is triggered, then active, then done."""

    correlation_id: str
    state: str = OPEN
    action: Action | None = None
    reason: str | None = None
    source: str | None = None
    triggers: int = 0
    unfinished: bool = False
    notified: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    expires: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Transaction:
        data = _decode(item)
        action = data.get("action")
        return cls(
            correlation_id=data["correlation_id"],
            state=TxState(data.get("state", OPEN)),
            action=Action(action) if action else None,
            reason=data.get("reason") or None,
            source=data.get("source") or None,
            triggers=int(data.get("triggers", 0)),
            unfinished=data.get("unfinished") in (ROLLBACK, COMMIT),
            notified="notified_at" in data,
            created_at=float(data.get("created_at", 0)),
            updated_at=float(data.get("updated_at", 0)),
            expires=int(data["expires"]) if "expires" in data else None,
        )

    @property
    def active(self) -> bool:
        return self.action is not None and self.state == ACTIVE_STATE[self.action]

    def as_dict(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "state": str(self.state),
            "action": str(self.action) if self.action else None,
            "reason": self.reason,
            "source": self.source,
            "triggers": self.triggers,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires": self.expires,
        }


def _tx_key(correlation_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TX#{correlation_id}"}, "sk": {"S": "TX"}}


def _p_key(correlation_id: str, service: str) -> dict[str, Any]:
    return {"pk": {"S": f"TX#{correlation_id}"}, "sk": {"S": f"P#{service}"}}


class Store:
    """All reads and conditional writes of transaction state (thread-safe: one boto3 client, no shared state).

    Retention: ``finished_retention`` seconds after a transaction or participant reaches a final state, its item
    carries ``expires`` and DynamoDB's TTL deletes it (0 keeps items forever). An open transaction's items carry
    ``open_ttl + finished_retention`` from creation as a backstop, replaced when it finishes.
    """

    def __init__(self, settings: TxManagerSettings, client: Any | None = None) -> None:
        self.table = settings.table_name
        self.retention = settings.finished_retention
        self.open_ttl = settings.open_ttl
        self.client = client or boto3.client(
            "dynamodb",
            region_name=settings.region,
            endpoint_url=settings.dynamodb_endpoint or None,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10),
        )

    def _expires(self, now: float, extra: float = 0.0) -> int:
        """The TTL epoch second for an item final at ``now`` (0: never)."""
        return int(now + extra + self.retention) if self.retention > 0 else 0

    # -- table -------------------------------------------------------------------------------------------------
    def create_table(self) -> bool:
        """Create the table, its sparse ``unfinished`` index and TTL on ``expires``; False when it already exists."""
        try:
            self.client.create_table(
                TableName=self.table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "unfinished", "AttributeType": "S"},
                ],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": UNFINISHED_INDEX,
                        "KeySchema": [
                            {"AttributeName": "unfinished", "KeyType": "HASH"},
                            {"AttributeName": "pk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["created_at"]},
                    }
                ],
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceInUseException":
                return False
            raise
        self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
        self.client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
        )
        return True

    # -- reads -------------------------------------------------------------------------------------------------
    def get(self, correlation_id: str) -> Transaction | None:
        item = self.client.get_item(TableName=self.table, Key=_tx_key(correlation_id), ConsistentRead=True).get("Item")
        return Transaction.from_item(item) if item else None

    def _must_get(self, correlation_id: str) -> Transaction:
        current = self.get(correlation_id)
        if current is None:
            raise StoreError(f"transaction {correlation_id} vanished (deleted by hand, or expired by TTL)")
        return current

    def participants(self, correlation_id: str) -> list[Participant]:
        """Every participant, in order of participation."""
        return self._partition(correlation_id, "P#")[1]

    def snapshot(self, correlation_id: str) -> tuple[Transaction | None, list[Participant]]:
        """The transaction and its participants in one query (its items share a partition)."""
        return self._partition(correlation_id, "")

    def _partition(self, correlation_id: str, prefix: str) -> tuple[Transaction | None, list[Participant]]:
        tx: Transaction | None = None
        found: list[Participant] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :p)" if prefix else ""),
            "ExpressionAttributeValues": {":pk": {"S": f"TX#{correlation_id}"}}
            | ({":p": {"S": prefix}} if prefix else {}),
            "ConsistentRead": True,
        }
        for page in self._pages(kwargs):
            for item in page.get("Items", []):
                if item["sk"]["S"] == "TX":
                    tx = Transaction.from_item(item)
                elif item["sk"]["S"].startswith("P#"):
                    found.append(Participant.from_item(item))
        return tx, sorted(found, key=lambda p: (p.seq, p.service))

    def participant(self, correlation_id: str, service: str) -> Participant | None:
        item = self.client.get_item(TableName=self.table, Key=_p_key(correlation_id, service), ConsistentRead=True).get(
            "Item"
        )
        return Participant.from_item(item) if item else None

    def _pages(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page: dict[str, Any] = self.client.query(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _marked(self, marker: str, **extra: Any) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": UNFINISHED_INDEX,
            "KeyConditionExpression": "unfinished = :a",
            "ExpressionAttributeValues": {":a": {"S": marker}},
        }
        if extra:
            kwargs["FilterExpression"] = extra.pop("filter")
            kwargs["ExpressionAttributeValues"].update(_encode(extra))
        for page in self._pages(kwargs):
            yield from page.get("Items", [])

    def unfinished(self) -> Iterator[str]:
        """Correlation IDs of transactions with work left (a fan-out, a slow retry, a failure notice not sent)."""
        for action in (ROLLBACK, COMMIT):
            for item in self._marked(action):
                yield item["pk"]["S"].removeprefix("TX#")

    def open_since_before(self, cutoff: float) -> Iterator[str]:
        """Correlation IDs of open transactions created before ``cutoff`` (candidates for ``open_ttl``)."""
        for item in self._marked(OPEN_MARKER, filter="created_at < :cutoff", **{":cutoff": cutoff}):
            yield item["pk"]["S"].removeprefix("TX#")

    # -- registration and triggers ----------------------------------------------------------------------------
    def register(
        self,
        correlation_id: str,
        service: str,
        rollback_url: str,
        commit_url: str | None,
        *,
        discovered: bool = False,
    ) -> tuple[Participant, Transaction, bool]:
        """Add a participant (idempotent: a second registration keeps the first one's order and URLs).

        Two writes: the transaction (order counter; created ``open`` when new) and the participant. Raises
        ConflictError when the transaction is committing or committed.
        """
        now = time.time()
        values: dict[str, Any] = {":id": correlation_id, ":now": now, ":open": OPEN, ":one": 1}
        update = (
            "SET correlation_id = :id, created_at = if_not_exists(created_at, :now), "
            "#s = if_not_exists(#s, :open), updated_at = :now"
        )
        backstop = self._expires(now, self.open_ttl) if self.open_ttl > 0 else 0
        if backstop:
            values[":backstop"] = backstop
            update += ", expires = if_not_exists(expires, :backstop)"

        def tx_update(expression: str, condition: str, extra: dict[str, Any]) -> dict[str, Any]:
            return dict(
                self.client.update_item(
                    TableName=self.table,
                    Key=_tx_key(correlation_id),
                    UpdateExpression=expression + " ADD participant_seq :one",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#s": "state", "#a": "action"},
                    ExpressionAttributeValues=_encode({**values, **extra}),
                    ReturnValues="ALL_NEW",
                )["Attributes"]
            )

        # the usual case, one write: an open (or new) transaction, marked so the sweep can end it past open_ttl
        ok, updated = if_condition_holds(
            lambda: tx_update(
                update + ", unfinished = if_not_exists(unfinished, :mark)",
                "attribute_not_exists(#a)",
                {":mark": OPEN_MARKER},
            )
        )
        if not ok:  # a latecomer to a rollback; refused during or after a commit
            ok, updated = if_condition_holds(lambda: tx_update(update, "#a <> :commit", {":commit": COMMIT}))
        if not ok or updated is None:
            raise ConflictError(self._must_get(correlation_id))
        tx = Transaction.from_item(updated)
        seq = int(_decode(updated)["participant_seq"])
        item: dict[str, Any] = {
            "pk": f"TX#{correlation_id}",
            "sk": f"P#{service}",
            "service": service,
            "rollback_url": rollback_url,
            "seq": seq,
            "state": PENDING,
            "attempts": 0,
            "lease_until": 0,
            "next_attempt_at": 0,
            "discovered": discovered,
            "registered_at": now,
            "updated_at": now,
        }
        if commit_url:
            item["commit_url"] = commit_url
        if backstop:
            item["expires"] = backstop
        created, _ = if_condition_holds(
            lambda: self.client.put_item(
                TableName=self.table, Item=_encode(item), ConditionExpression="attribute_not_exists(pk)"
            )
        )
        if not created:
            existing = self.participant(correlation_id, service)
            if existing is None:
                raise StoreError(f"participant {service} of {correlation_id} vanished during its registration")
            return existing, tx, False
        return Participant.from_item(_encode(item)), tx, True

    def begin(
        self, correlation_id: str, action: Action, reason: str | None, source: str | None
    ) -> tuple[Transaction, bool]:
        """Start ``action`` (True) or count a duplicate trigger of it (False); ConflictError for the other action."""
        now = time.time()
        values = {
            ":id": correlation_id,
            ":a": action,
            ":active": ACTIVE_STATE[action],
            ":now": now,
            ":one": 1,
            ":reason": reason or "",
            ":source": source or "",
        }
        started, updated = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression=(
                    "SET correlation_id = :id, #a = :a, #s = :active, unfinished = :a, reason = :reason, "
                    "#src = :source, created_at = if_not_exists(created_at, :now), updated_at = :now, "
                    "started_at = :now ADD triggers :one REMOVE expires"
                ),
                ConditionExpression="attribute_not_exists(#a)",
                ExpressionAttributeNames={"#a": "action", "#s": "state", "#src": "source"},
                ExpressionAttributeValues=_encode(values),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
        if started:
            return Transaction.from_item(updated or {}), True
        counted, updated = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression="ADD triggers :one",
                ConditionExpression="#a = :a",
                ExpressionAttributeNames={"#a": "action"},
                ExpressionAttributeValues=_encode({":a": action, ":one": 1}),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
        if counted:
            return Transaction.from_item(updated or {}), False
        raise ConflictError(self._must_get(correlation_id))

    def reopen(self, correlation_id: str, action: Action = ROLLBACK) -> bool:
        """Make a finished transaction active again: a participant joined a finished rollback, a slow retry is
        due, or an operator asked to retry the participants that failed."""
        ok, _ = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression="SET #s = :active, unfinished = :a, updated_at = :now REMOVE expires",
                ConditionExpression="#a = :a AND #s <> :active",
                ExpressionAttributeNames={"#a": "action", "#s": "state"},
                ExpressionAttributeValues=_encode({":a": action, ":active": ACTIVE_STATE[action], ":now": time.time()}),
            )
        )
        return ok

    def retry_failed(self, correlation_id: str) -> list[str]:
        """Put participants that failed (or whose outcome is unknown) back to pending with a fresh attempt budget,
        and let a new final failure be notified again."""

        def reset_one(p: Participant) -> Any:
            return self.client.update_item(
                TableName=self.table,
                Key=_p_key(correlation_id, p.service),
                UpdateExpression=(
                    "SET #s = :pending, attempts = :zero, next_attempt_at = :zero, updated_at = :now "
                    "REMOVE parked_since"
                ),
                ConditionExpression="#s = :was",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(
                    {":pending": PENDING, ":zero": 0, ":was": p.state, ":now": time.time()}
                ),
            )

        reset = [
            p.service
            for p in self.participants(correlation_id)
            if p.state in (FAILED, UNKNOWN) and if_condition_holds(functools.partial(reset_one, p))[0]
        ]
        if reset:
            self.client.update_item(
                TableName=self.table, Key=_tx_key(correlation_id), UpdateExpression="REMOVE notified_at"
            )
        return reset

    # -- one participant call: claim, then settle -------------------------------------------------------------
    def claim(self, correlation_id: str, service: str, owner: str, lease_seconds: float) -> Participant | None:
        """Take the right to call this participant now; None when it is not due or someone else holds it.

        Due means: pending (or unknown, or parked for a slow retry) and its backoff has passed, or in progress
        under a lease that expired (its holder died mid-call: the call is repeated, which is the at-least-once
        boundary the participant dedupes by the idempotency key). The returned participant's ``lease_owner`` is
        a token unique to this claim; pass it to ``settle``.
        """
        now = time.time()
        token = f"{owner}/{uuid.uuid4().hex[:12]}"
        ok, updated = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_p_key(correlation_id, service),
                UpdateExpression=(
                    "SET #s = :busy, lease_owner = :me, lease_until = :until, updated_at = :now ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_exists(pk) AND ((#s = :pending AND next_attempt_at <= :now) "
                    "OR (#s IN (:unknown, :failed) AND next_attempt_at > :zero AND next_attempt_at <= :now) "
                    "OR (#s = :busy AND lease_until < :now))"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(
                    {
                        ":busy": IN_PROGRESS,
                        ":pending": PENDING,
                        ":unknown": UNKNOWN,
                        ":failed": FAILED,
                        ":zero": 0,
                        ":me": token,
                        ":until": now + lease_seconds,
                        ":now": now,
                        ":one": 1,
                    }
                ),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
        if ok:
            return Participant.from_item(updated or {})
        # the SDK may have retried a request whose first try was applied: then the claim is ours after all
        current = self.participant(correlation_id, service)
        return current if current is not None and current.lease_owner == token else None

    def settle(
        self,
        correlation_id: str,
        service: str,
        owner: str,
        state: PState,
        *,
        status: int | None = None,
        error: str | None = None,
        next_attempt_at: float = 0.0,
        parked: bool = False,
    ) -> Participant | None:
        """Record the result of the claim ``owner`` (its token): the participant as now stored, or None when the
        lease was lost to another caller. ``parked``: out of the fast budget, waiting for a slow retry."""
        now = time.time()
        values: dict[str, Any] = {
            ":s": state,
            ":me": owner,
            ":busy": IN_PROGRESS,
            ":now": now,
            ":next": next_attempt_at,
            ":err": (error or "")[:MAX_ERROR_CHARS],
            ":status": status if status is not None else 0,
        }
        update = (
            "SET #s = :s, updated_at = :now, next_attempt_at = :next, last_error = :err, "
            "last_status = :status, settled_by = :me"
        )
        if parked:
            update += ", parked_since = if_not_exists(parked_since, :now)"
        expires = self._expires(now)
        if expires:
            values[":expires"] = expires
            update += ", expires = :expires"
        update += " REMOVE lease_owner" + ("" if parked else ", parked_since")
        ok, updated = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_p_key(correlation_id, service),
                UpdateExpression=update,
                ConditionExpression="#s = :busy AND lease_owner = :me",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(values),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
        if ok:
            return Participant.from_item(updated or {})
        current = self.participant(correlation_id, service)  # applied by an earlier try of this request?
        return current if current is not None and current.settled_by == owner and current.state == state else None

    # -- the end of a transaction -------------------------------------------------------------------------------
    def finish(
        self, correlation_id: str, action: Action, final_state: TxState, *, keep_unfinished: bool
    ) -> Transaction | None:
        """Move the transaction from active to ``final_state``: the transaction as now stored for the one caller
        that made the move, None for the others."""
        now = time.time()
        values: dict[str, Any] = {":final": final_state, ":active": ACTIVE_STATE[action], ":now": now}
        update = "SET #s = :final, updated_at = :now, finished_at = :now"
        expires = self._expires(now)
        if expires:
            values[":expires"] = expires
            update += ", expires = :expires"
        if not keep_unfinished:
            update += " REMOVE unfinished"
        ok, updated = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression=update,
                ConditionExpression="#s = :active",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(values),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
        return Transaction.from_item(updated or {}) if ok else None

    def mark_notified(self, correlation_id: str, *, keep_unfinished: bool) -> None:
        """The failure notice went out; without slow retries left, nothing is left to resume either."""
        self.client.update_item(
            TableName=self.table,
            Key=_tx_key(correlation_id),
            UpdateExpression="SET notified_at = :now" + ("" if keep_unfinished else " REMOVE unfinished"),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_encode({":now": time.time()}),
        )

    def clear_unfinished(self, correlation_id: str) -> None:
        """Nothing is left to resume for this transaction."""
        self.client.update_item(
            TableName=self.table,
            Key=_tx_key(correlation_id),
            UpdateExpression="REMOVE unfinished",
            ConditionExpression="attribute_exists(pk)",
        )

    def expire(self, correlation_id: str) -> bool:
        """End an open transaction that outlived ``open_ttl`` (state ``expired``, TTL set); False when it is not
        open any more (then a stale ``open`` marker is dropped)."""
        now = time.time()
        values: dict[str, Any] = {":open": OPEN, ":expired": EXPIRED, ":now": now, ":mark": OPEN_MARKER}
        update = "SET #s = :expired, updated_at = :now, finished_at = :now"
        expires = self._expires(now)
        if expires:
            values[":expires"] = expires
            update += ", expires = :expires"
        ok, _ = if_condition_holds(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression=update + " REMOVE unfinished",
                ConditionExpression="#s = :open AND attribute_not_exists(#a) AND unfinished = :mark",
                ExpressionAttributeNames={"#s": "state", "#a": "action"},
                ExpressionAttributeValues=_encode(values),
            )
        )
        if not ok:
            if_condition_holds(
                lambda: self.client.update_item(
                    TableName=self.table,
                    Key=_tx_key(correlation_id),
                    UpdateExpression="REMOVE unfinished",
                    ConditionExpression="unfinished = :mark",
                    ExpressionAttributeValues=_encode({":mark": OPEN_MARKER}),
                )
            )
        return ok

    # -- replay protection shared by every instance -------------------------------------------------------------
    def remember_nonce(self, nonce: str, ttl: float) -> bool:
        """Record a signature nonce; False when any instance has already accepted a call with it."""
        now = time.time()
        ok, _ = if_condition_holds(
            lambda: self.client.put_item(
                TableName=self.table,
                Item=_encode({"pk": f"NONCE#{nonce}", "sk": "N", "expires": int(now + ttl)}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        )
        return ok
