"""CloudWatch Logs sink (boto3): batches to the real PutLogEvents limits, retries only the call that failed.

CloudWatch cannot de-duplicate. The sink journals the ids of every landed call until the checkpoint passes
them, so after a crash only the call in flight at the moment of the crash can be stored twice (the duplicate
window: a PutLogEvents that landed but whose reply was lost, by timeout or by SIGKILL, is sent again).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from corrtrace.collector.record import Record
from corrtrace.collector.retry import Backoff, DeadLetters
from corrtrace.collector.sinks.base import CallLimits, Found, SearchQuery, SinkStats
from corrtrace.collector.sinks.cw_batcher import (
    EVENT_OVERHEAD,
    CwEvent,
    CwLimits,
    batch_fill,
    plan_batches,
    split_message,
)
from corrtrace.collector.sinks.cw_batcher import event_size as _event_size
from corrtrace.collector.sinks.cw_batcher import window_reason as _window_reason

from corrtrace.shapes import whole_number
from corrtrace.timestamps import format_timestamp, parse_timestamp_ms

log = logging.getLogger("corrtrace.collector.cloudwatch")
SEARCH_SCAN_MAX = 100_000  # events one search reads at most (FilterLogEvents pages); beyond, the result says "more"
SEARCH_PAGE = 10_000  # events per FilterLogEvents page (its maximum)
_RETRY_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalFailure",
        "RequestLimitExceeded",
        "LimitExceededException",
        "OperationAbortedException",
    }
)


class LandedJournal:
    """Ids stored in CloudWatch whose source offsets the checkpoint has not passed yet (one file, append-only)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.ids: set[str] = set()
        if self.path is not None and self.path.exists():
            self.ids = {line for line in self.path.read_text(encoding="utf-8").splitlines() if line}

    def add(self, keys: list[str]) -> None:
        self.ids.update(keys)
        if self.path is not None and keys:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(keys) + "\n")

    def committed(self, offsets: dict[str, int]) -> None:
        """Forget ids at offsets before the committed ones: those lines will never be read again."""
        if not self.ids:
            return
        keep = set()
        for key in self.ids:
            source, _, rest = key.rpartition("-")
            offset = whole_number(rest.split("#", 1)[0])
            done = offsets.get(source)
            if done is None or offset is None or offset >= done:
                keep.add(key)
        if keep != self.ids:
            self.ids = keep
            if self.path is not None:
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
                os.replace(tmp, self.path)


def logs_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 ``logs`` client with botocore's own retries off: the sink retries what did not land."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30, max_pool_connections=4
    )
    return boto3.client(
        "logs",
        endpoint_url=endpoint_url,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=config,
    )


class CloudWatchSink:
    """Log group per environment, stream per service and instance (templates with ``{environment}``,
    ``{service}``, ``{host}``); group and stream are created on ``ResourceNotFoundException``."""

    name = "cloudwatch"
    idempotent = False
    max_in_flight = 1  # a stream's events go in order

    def __init__(
        self,
        client: Any,
        *,
        log_group: str = "/corrtrace/{environment}",
        log_stream: str = "{service}/{host}",
        limits: CwLimits | None = None,
        dead_letters: DeadLetters | None = None,
        backoff: Backoff | None = None,
        journal_path: str | os.PathLike[str] | None = None,
        search_groups: list[str] | None = None,
        clock: Any = None,
        retention_days: int | None = None,
    ) -> None:
        self.client = client
        self.retention_days = retention_days
        self.log_group = log_group
        self.log_stream = log_stream
        self.limits = limits or CwLimits()
        self.call_limits = CallLimits(self.limits.max_batch_bytes, self.limits.max_events, EVENT_OVERHEAD)
        self.dead_letters = dead_letters or DeadLetters(None)
        self.backoff_proto = backoff or Backoff()
        self.journal = LandedJournal(journal_path)
        self.search_groups = search_groups
        self.clock = clock or time.time
        self.stats = SinkStats()
        self.fills: list[float] = []
        self._known: set[tuple[str, str]] = set()
        self._retention_checked: set[str] = set()

    def _route(self, r: Record) -> tuple[str, str]:
        fields = {
            "environment": r.environment or "default",
            "service": r.service or "unknown",
            "host": r.host or "unknown",
        }
        return self.log_group.format(**fields), self.log_stream.format(**fields).replace(":", "_")

    def deliver(self, records: Sequence[Record], stop: threading.Event | None = None) -> None:
        now = int(self.clock() * 1000)
        streams: dict[tuple[str, str], list[CwEvent]] = {}
        landed = self.journal.ids
        for r in records:
            reason = _window_reason(r.ts, now, self.limits)
            if reason is not None:
                self.dead_letters.add(self.name, reason, r.raw, r.doc_id, timestamp=r.ts)
                self.stats.dead_lettered += 1
                continue
            text = r.raw.decode()
            parts = (
                [text]
                if _event_size(text) <= self.limits.max_event_bytes
                else split_message(
                    text,
                    correlation_id=r.correlation_id,
                    event_id=r.doc_id,
                    timestamp_text=format_timestamp(r.ts),
                    limits=self.limits,
                )
            )
            target = streams.setdefault(self._route(r), [])
            for i, part in enumerate(parts):
                key = r.doc_id if len(parts) == 1 else f"{r.doc_id}#{i + 1}"
                if key in landed:
                    self.stats.duplicates += 1  # landed before a crash: not sent twice
                    continue
                target.append(CwEvent(r.ts, part, _event_size(part), (key, r)))
        for (group, stream), events in streams.items():
            for batch in plan_batches(events, self.limits):
                self._put(group, stream, batch, stop)

    def committed(self, offsets: dict[str, int]) -> None:
        self.journal.committed(offsets)

    def _put(self, group: str, stream: str, batch: list[CwEvent], stop: threading.Event | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        backoff = Backoff(self.backoff_proto.initial, self.backoff_proto.maximum, self.backoff_proto.factor)
        api_events = [e.to_api() for e in batch]
        while True:
            self.stats.requests += 1
            try:
                resp = self.client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=api_events)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "ResourceNotFoundException":
                    self._create(group, stream)
                    continue
                if code == "DataAlreadyAcceptedException":
                    resp = {}
                elif code == "InvalidParameterException":
                    self._invalid(group, stream, batch, stop, str(exc))
                    return
                else:
                    self.stats.failures += 1
                    if code in _RETRY_CODES or status >= 500:
                        self.stats.retried += len(batch)
                        if backoff.attempt in (0, 5) or backoff.attempt % 20 == 0:
                            log.warning("CloudWatch %s on %s/%s, retrying with backoff", code, group, stream)
                    else:
                        log.error("CloudWatch refused PutLogEvents (%s: %s); fix the setup, retrying slowly", code, exc)
                    backoff.wait(stop)
                    continue
            except NoCredentialsError as exc:
                self.stats.failures += 1
                if backoff.attempt in (0, 5) or backoff.attempt % 20 == 0:
                    log.error("CloudWatch: %s; set AWS credentials (nothing is dropped, retrying)", exc)
                backoff.wait(stop)
                continue
            except BotoCoreError as exc:  # connection refused, reset, timeout: possibly landed (duplicate window)
                self.stats.failures += 1
                self.stats.retried += len(batch)
                if backoff.attempt in (0, 5):
                    log.warning("CloudWatch unreachable (%s), retrying with backoff", exc)
                backoff.wait(stop)
                continue
            self._landed(batch, resp.get("rejectedLogEventsInfo") or {})
            return

    def _landed(self, batch: list[CwEvent], rejected: dict[str, int]) -> None:
        bad: dict[int, str] = {}
        if "tooNewLogEventStartIndex" in rejected:
            for i in range(int(rejected["tooNewLogEventStartIndex"]), len(batch)):
                bad[i] = "rejected by CloudWatch: too new"
        for key, why in (("tooOldLogEventEndIndex", "too old"), ("expiredLogEventEndIndex", "expired")):
            if key in rejected:
                for i in range(int(rejected[key])):
                    bad[i] = f"rejected by CloudWatch: {why}"
        keys = []
        for i, event in enumerate(batch):
            key, _ = event.key
            if i in bad:
                self.dead_letters.add(self.name, bad[i], event.message.encode(), key, timestamp=event.timestamp)
                self.stats.dead_lettered += 1
            else:
                keys.append(key)
        self.stats.delivered += len(keys)
        self.fills.append(batch_fill(batch, self.limits))
        self.journal.add(keys)

    def _invalid(
        self, group: str, stream: str, batch: list[CwEvent], stop: threading.Event | None, reason: str
    ) -> None:
        """InvalidParameterException: split and try the halves; a single event that still fails is dead-lettered."""
        if len(batch) == 1:
            key, _ = batch[0].key
            self.dead_letters.add(self.name, f"InvalidParameterException: {reason}", batch[0].message.encode(), key)
            self.stats.dead_lettered += 1
            return
        half = len(batch) // 2
        self._put(group, stream, batch[:half], stop)
        self._put(group, stream, batch[half:], stop)

    def _create(self, group: str, stream: str) -> None:
        from botocore.exceptions import ClientError

        for call, kwargs in (
            (self.client.create_log_group, {"logGroupName": group}),
            (self.client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                call(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                    raise
                if call == self.client.create_log_group:
                    self._check_retention(group)
            else:
                if call == self.client.create_log_group and self.retention_days:
                    self.client.put_retention_policy(logGroupName=group, retentionInDays=self.retention_days)
        self._known.add((group, stream))

    def _check_retention(self, group: str) -> None:
        """A group someone else created keeps its retention; say once if it differs from ours."""
        if not self.retention_days or group in self._retention_checked:
            return
        self._retention_checked.add(group)
        found = self.client.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
        days = next((g.get("retentionInDays") for g in found if g["logGroupName"] == group), None)
        if days != self.retention_days:
            log.warning(
                "log group %s exists with retention %s; corrtrace would set %d days (left unchanged: "
                "aws logs put-retention-policy --log-group-name %s --retention-in-days %d)",
                group,
                f"{days} days" if days else "never expire",
                self.retention_days,
                group,
                self.retention_days,
            )

    # -- search ------------------------------------------------------------------------------------------------
    def groups(self) -> list[str]:
        if self.search_groups:
            return list(self.search_groups)
        prefix = self.log_group.split("{", 1)[0]
        found: list[str] = []
        kwargs: dict[str, Any] = {"logGroupNamePrefix": prefix} if prefix else {}
        while True:
            resp = self.client.describe_log_groups(**kwargs)
            found += [g["logGroupName"] for g in resp.get("logGroups", [])]
            if not resp.get("nextToken"):
                return found
            kwargs["nextToken"] = resp["nextToken"]

    def search(self, query: SearchQuery) -> Found:
        """``FilterLogEvents`` with ``{ $.correlation_id = "<id>" }``, then checked client-side (moto ignores JSON
        patterns); split parts are joined back into their event."""
        pattern = id_pattern(query.correlation_id)
        found: list[tuple[int, int, dict[str, Any]]] = []
        parts: dict[str, dict[int, str]] = {}
        arrival = 0
        cut = False
        for group in self.groups():
            kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": pattern, "limit": SEARCH_PAGE}
            if query.since is not None:
                kwargs["startTime"] = query.since
            if query.until is not None:
                kwargs["endTime"] = query.until
            while True:
                resp = self.client.filter_log_events(**kwargs)
                for item in resp.get("events", []):
                    arrival += 1
                    try:
                        doc = orjson.loads(item["message"])
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(doc, dict):
                        continue
                    meta = doc.get("corrtrace")
                    if isinstance(meta, dict) and "part" in meta and "parts" in meta:
                        pieces = parts.setdefault(str(meta.get("id")), {})
                        pieces[int(meta["part"])] = doc.get("message", "")
                        if len(pieces) == int(meta["parts"]):
                            try:
                                doc = orjson.loads("".join(pieces[i] for i in sorted(pieces)))
                            except orjson.JSONDecodeError:
                                continue
                        else:
                            continue
                    ts = parse_timestamp_ms(doc.get("@timestamp")) or int(item.get("timestamp", 0))
                    if query.accepts(doc, ts):
                        found.append((ts, arrival, doc))
                token = resp.get("nextToken")
                if not token:
                    break
                if arrival >= SEARCH_SCAN_MAX:  # one search reads a bounded number of events
                    cut = True
                    break
                kwargs["nextToken"] = token
            if cut:
                break
        found.sort(key=lambda t: (t[0], t[1]))
        return Found.first([doc for _, _, doc in found], query.limit, more=cut)

    def make_searchable(self) -> None:
        """Nothing to ask for: CloudWatch Logs has no refresh (its searches may lag a few seconds)."""

    def close(self) -> None:
        pass


# no escape inside a pattern's quotes; ``*`` is a wildcard there, ``%...%`` a regular expression
_UNQUOTABLE = re.compile(r'["\\*%]')


def id_pattern(correlation_id: str) -> str:
    """The filter pattern that finds ``correlation_id``'s events (a superset: ``search`` checks each one).

    An id with a character a quoted pattern string cannot hold exactly is looked up by its part before the
    first such character as a prefix (``ab*``), else its part after the last as a suffix (``*cd``), else by
    the field's presence."""
    parts = _UNQUOTABLE.split(correlation_id)
    if len(parts) == 1:
        value = correlation_id
    elif parts[0]:
        value = parts[0] + "*"
    elif parts[-1]:
        value = "*" + parts[-1]
    else:
        value = "*"
    return '{ $.correlation_id = "' + value + '" }'
