"""Transaction state in DynamoDB: one item per transaction and one per participant, changed only by
conditional writes, so that concurrent triggers, several manager instances and restarts agree on who calls a
participant: a participant call is *claimed* (state ``in_progress`` plus a lease) before it is made, and only the
claimant may settle it.

Table layout (``pk``/``sk`` strings, one table):
``TX#<id>`` / ``TX``          the transaction: state, action, reason, source, counters, ``unfinished`` marker
``TX#<id>`` / ``P#<service>`` one participant: urls, order (``seq``), state, attempts, lease, next attempt time
``NONCE#<n>`` / ``N``         a signature nonce already used (replay protection shared by all instances; TTL)
A sparse index ``unfinished`` lists only the transactions with work left, which a (re)starting manager resumes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError
from corrtrace.txmanager.settings import TxManagerSettings

ROLLBACK, COMMIT = "rollback", "commit"
ACTIVE_STATE = {ROLLBACK: "rolling_back", COMMIT: "committing"}
DONE_STATE = {ROLLBACK: "rolled_back", COMMIT: "committed"}
FAILED = "failed"
# participant states
PENDING, IN_PROGRESS, SUCCEEDED, SKIPPED = "pending", "in_progress", "succeeded", "skipped"
TERMINAL = frozenset({SUCCEEDED, FAILED, SKIPPED})
UNFINISHED_INDEX = "unfinished"
MAX_ERROR_CHARS = 300

_ser = TypeSerializer()
_de = TypeDeserializer()


class ConflictError(Exception):
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


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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
            state=data.get("state", PENDING),
            attempts=int(data.get("attempts", 0)),
            lease_owner=data.get("lease_owner"),
            settled_by=data.get("settled_by"),
            lease_until=float(data.get("lease_until", 0)),
            next_attempt_at=float(data.get("next_attempt_at", 0)),
            last_error=data.get("last_error") or None,
            last_status=data.get("last_status") or None,
            discovered=bool(data.get("discovered", False)),
            registered_at=float(data.get("registered_at", 0)),
            updated_at=float(data.get("updated_at", 0)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "rollback_url": self.rollback_url,
            "commit_url": self.commit_url,
            "order": self.seq,
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "discovered": self.discovered,
            "registered_at": self.registered_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Transaction:
    """One correlation ID's transaction: ``open`` until a rollback or commit is triggered, then active, then done."""

    correlation_id: str
    state: str = "open"
    action: str | None = None
    reason: str | None = None
    source: str | None = None
    triggers: int = 0
    unfinished: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Transaction:
        data = _decode(item)
        return cls(
            correlation_id=data["correlation_id"],
            state=data.get("state", "open"),
            action=data.get("action"),
            reason=data.get("reason") or None,
            source=data.get("source") or None,
            triggers=int(data.get("triggers", 0)),
            unfinished="unfinished" in data,
            created_at=float(data.get("created_at", 0)),
            updated_at=float(data.get("updated_at", 0)),
        )

    @property
    def active(self) -> bool:
        return self.action is not None and self.state == ACTIVE_STATE[self.action]

    def as_dict(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "state": self.state,
            "action": self.action,
            "reason": self.reason,
            "source": self.source,
            "triggers": self.triggers,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _tx_key(correlation_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TX#{correlation_id}"}, "sk": {"S": "TX"}}


def _p_key(correlation_id: str, service: str) -> dict[str, Any]:
    return {"pk": {"S": f"TX#{correlation_id}"}, "sk": {"S": f"P#{service}"}}


class Store:
    """All reads and conditional writes of transaction state (thread-safe: one boto3 client, no shared state)."""

    def __init__(self, settings: TxManagerSettings, client: Any | None = None) -> None:
        self.table = settings.table_name
        self.client = client or boto3.client(
            "dynamodb",
            region_name=settings.region,
            endpoint_url=settings.dynamodb_endpoint or None,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10),
        )

    # -- table -------------------------------------------------------------------------------------------------
    def create_table(self) -> bool:
        """Create the table, its sparse ``unfinished`` index and TTL; False when it already exists."""
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
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceInUseException":
                return False
            raise
        self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
        self.client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
        )
        return True

    # -- reads -------------------------------------------------------------------------------------------------
    def get(self, correlation_id: str) -> Transaction | None:
        item = self.client.get_item(TableName=self.table, Key=_tx_key(correlation_id), ConsistentRead=True).get(
            "Item"
        )
        return Transaction.from_item(item) if item else None

    def participants(self, correlation_id: str) -> list[Participant]:
        """Every participant, in order of participation."""
        found: list[Participant] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":pk": {"S": f"TX#{correlation_id}"}, ":p": {"S": "P#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            found += [Participant.from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda p: (p.seq, p.service))

    def participant(self, correlation_id: str, service: str) -> Participant | None:
        item = self.client.get_item(
            TableName=self.table, Key=_p_key(correlation_id, service), ConsistentRead=True
        ).get("Item")
        return Participant.from_item(item) if item else None

    def unfinished(self) -> Iterator[str]:
        """Correlation IDs of transactions with work left (a fan-out, or a failure notice not yet sent)."""
        for action in (ROLLBACK, COMMIT):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": UNFINISHED_INDEX,
                "KeyConditionExpression": "unfinished = :a",
                "ExpressionAttributeValues": {":a": {"S": action}},
            }
            while True:
                page = self.client.query(**kwargs)
                for item in page.get("Items", []):
                    yield item["pk"]["S"].removeprefix("TX#")
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

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
        """Add a participant (idempotent: a second registration keeps the first one's order and URLs)."""
        now = time.time()
        updated = self.client.update_item(
            TableName=self.table,
            Key=_tx_key(correlation_id),
            UpdateExpression=(
                "SET correlation_id = :id, created_at = if_not_exists(created_at, :now), "
                "#s = if_not_exists(#s, :open), updated_at = :now ADD participant_seq :one"
            ),
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues=_encode({":id": correlation_id, ":now": now, ":open": "open", ":one": 1}),
            ReturnValues="ALL_NEW",
        )["Attributes"]
        tx = Transaction.from_item(updated)
        seq = int(_decode(updated)["participant_seq"])
        values: dict[str, Any] = {
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
            values["commit_url"] = commit_url
        try:
            self.client.put_item(
                TableName=self.table, Item=_encode(values), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            existing = self.participant(correlation_id, service)
            assert existing is not None
            return existing, tx, False
        return Participant.from_item(_encode(values)), tx, True

    def begin(
        self, correlation_id: str, action: str, reason: str | None, source: str | None
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
        try:
            updated = self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression=(
                    "SET correlation_id = :id, #a = :a, #s = :active, unfinished = :a, reason = :reason, "
                    "#src = :source, created_at = if_not_exists(created_at, :now), updated_at = :now, "
                    "started_at = :now ADD triggers :one"
                ),
                ConditionExpression="attribute_not_exists(#a)",
                ExpressionAttributeNames={"#a": "action", "#s": "state", "#src": "source"},
                ExpressionAttributeValues=_encode(values),
                ReturnValues="ALL_NEW",
            )["Attributes"]
            return Transaction.from_item(updated), True
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
        try:
            updated = self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression="ADD triggers :one",
                ConditionExpression="#a = :a",
                ExpressionAttributeNames={"#a": "action"},
                ExpressionAttributeValues=_encode({":a": action, ":one": 1}),
                ReturnValues="ALL_NEW",
            )["Attributes"]
            return Transaction.from_item(updated), False
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
        current = self.get(correlation_id)
        assert current is not None
        raise ConflictError(current)

    def reopen(self, correlation_id: str, action: str = ROLLBACK) -> bool:
        """Make a finished transaction active again: a participant joined a finished rollback, or an operator
        asked to retry the participants that failed."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression="SET #s = :active, unfinished = :a, updated_at = :now",
                ConditionExpression="#a = :a AND #s <> :active",
                ExpressionAttributeNames={"#a": "action", "#s": "state"},
                ExpressionAttributeValues=_encode({":a": action, ":active": ACTIVE_STATE[action], ":now": time.time()}),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def retry_failed(self, correlation_id: str) -> list[str]:
        """Put participants that failed for good back to pending with a fresh attempt budget."""
        reset = []
        for participant in self.participants(correlation_id):
            if participant.state != FAILED:
                continue
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=_p_key(correlation_id, participant.service),
                    UpdateExpression="SET #s = :pending, attempts = :zero, next_attempt_at = :zero, updated_at = :now",
                    ConditionExpression="#s = :failed",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues=_encode(
                        {":pending": PENDING, ":zero": 0, ":failed": FAILED, ":now": time.time()}
                    ),
                )
            except ClientError as exc:
                if not _is_conditional_failure(exc):
                    raise
                continue
            reset.append(participant.service)
        return reset

    # -- one participant call: claim, then settle -------------------------------------------------------------
    def claim(self, correlation_id: str, service: str, owner: str, lease_seconds: float) -> Participant | None:
        """Take the right to call this participant now; None when it is not due or someone else holds it.

        Due means: pending and its backoff has passed, or in progress under a lease that expired (its holder
        died mid-call: the call is repeated, which is the at-least-once boundary the participant dedupes).
        The returned participant's ``lease_owner`` is a token unique to this claim; pass it to ``settle``.
        """
        now = time.time()
        token = f"{owner}/{uuid.uuid4().hex[:12]}"
        try:
            updated = self.client.update_item(
                TableName=self.table,
                Key=_p_key(correlation_id, service),
                UpdateExpression=(
                    "SET #s = :busy, lease_owner = :me, lease_until = :until, updated_at = :now ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_exists(pk) AND ((#s = :pending AND next_attempt_at <= :now) "
                    "OR (#s = :busy AND lease_until < :now))"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(
                    {
                        ":busy": IN_PROGRESS,
                        ":pending": PENDING,
                        ":me": token,
                        ":until": now + lease_seconds,
                        ":now": now,
                        ":one": 1,
                    }
                ),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            # the SDK may have retried a request whose first try was applied: then the claim is ours after all
            current = self.participant(correlation_id, service)
            return current if current is not None and current.lease_owner == token else None
        return Participant.from_item(updated)

    def settle(
        self,
        correlation_id: str,
        service: str,
        owner: str,
        state: str,
        *,
        status: int | None = None,
        error: str | None = None,
        next_attempt_at: float = 0.0,
    ) -> bool:
        """Record the result of the claim ``owner`` (its token); False when the lease was lost to another caller."""
        values: dict[str, Any] = {
            ":s": state,
            ":me": owner,
            ":busy": IN_PROGRESS,
            ":now": time.time(),
            ":next": next_attempt_at,
            ":err": (error or "")[:MAX_ERROR_CHARS],
            ":status": status if status is not None else 0,
        }
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_p_key(correlation_id, service),
                UpdateExpression=(
                    "SET #s = :s, updated_at = :now, next_attempt_at = :next, last_error = :err, "
                    "last_status = :status, settled_by = :me REMOVE lease_owner"
                ),
                ConditionExpression="#s = :busy AND lease_owner = :me",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(values),
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            current = self.participant(correlation_id, service)  # applied by an earlier try of this request?
            return current is not None and current.settled_by == owner and current.state == state
        return True

    # -- the end of a transaction -------------------------------------------------------------------------------
    def finish(self, correlation_id: str, action: str, final_state: str, *, keep_unfinished: bool) -> bool:
        """Move the transaction from active to ``final_state``; True for the one caller that made the move."""
        update = "SET #s = :final, updated_at = :now, finished_at = :now"
        if not keep_unfinished:
            update += " REMOVE unfinished"
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_tx_key(correlation_id),
                UpdateExpression=update,
                ConditionExpression="#s = :active",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=_encode(
                    {":final": final_state, ":active": ACTIVE_STATE[action], ":now": time.time()}
                ),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def clear_unfinished(self, correlation_id: str) -> None:
        """The failure notice went out: nothing is left to resume for this transaction."""
        self.client.update_item(
            TableName=self.table,
            Key=_tx_key(correlation_id),
            UpdateExpression="REMOVE unfinished",
            ConditionExpression="attribute_exists(pk)",
        )

    # -- replay protection shared by every instance -------------------------------------------------------------
    def remember_nonce(self, nonce: str, ttl: float) -> bool:
        """Record a signature nonce; False when any instance has already accepted a call with it."""
        now = time.time()
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_encode({"pk": f"NONCE#{nonce}", "sk": "N", "expires": int(now + ttl)}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True
