"""The local DynamoDB-Streams event-source mapping behaves like Lambda's: batches, retries of a failing
batch, partial batch failures, the jam behind a poison record, bisect and skip, lanes per partition key."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from corrtrace.eventsource import PollerSettings, StreamPoller, lane_of, record_correlation_id


def _stream(aws: Callable[[str], Any], count: int, poison: set[int]) -> tuple[Any, str, list[str]]:
    """A fresh table with a stream and ``count`` inserted items; returns (streams client, arn, ids)."""
    ddb = aws("dynamodb")
    table = f"poller-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "correlation_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "correlation_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ids = []
    for i in range(count):
        cid = f"cid-{i:03d}"
        ids.append(cid)
        ddb.put_item(TableName=table, Item={"correlation_id": {"S": cid}, "poison": {"BOOL": i in poison}})
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    return aws("dynamodbstreams"), arn, ids


def _is_poison(record: dict[str, Any]) -> bool:
    return bool(record["dynamodb"]["NewImage"]["poison"]["BOOL"])


class Recorder:
    """A handler that records what it saw; ``mode`` = "partial" (batchItemFailures) or "raise"."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.timeline: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.function_name == "function" and context.get_remaining_time_in_millis() > 0
        failures = []
        for record in event["Records"]:
            assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"].startswith("arn:aws:dynamodb")
            cid = str(record_correlation_id(record))
            if _is_poison(record):
                with self.lock:
                    self.timeline.append(("fail", cid))
                if self.mode == "raise":
                    raise KeyError("postcode")
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                continue
            with self.lock:
                self.timeline.append(("ok", cid))
        return {"batchItemFailures": failures}

    def first(self, kind: str, cid: str) -> int:
        return self.timeline.index((kind, cid))

    def last(self, kind: str, cid: str) -> int:
        return len(self.timeline) - 1 - self.timeline[::-1].index((kind, cid))


def test_partial_batch_failure_retries_from_the_poison_then_skips_it(own_aws: Callable[[str], Any]) -> None:
    streams, arn, ids = _stream(own_aws, 10, poison={3})
    handler = Recorder("partial")
    dead: list[tuple[list[dict[str, Any]], str]] = []
    poller = StreamPoller(
        streams,
        arn,
        handler,
        PollerSettings(batch_size=10, max_retries=2, retry_delay=0.001),
        on_failure=lambda records, reason: dead.append((records, reason)),
    )
    assert poller.poll_once() == 10
    # the records before the poison were checkpointed by the first call and never seen again
    assert [handler.timeline.count(("ok", c)) for c in ids[:3]] == [1, 1, 1]
    # the poison: the first call + 2 retries, then one try per bisection until it is alone ([3..9] -> [3,4,5]
    # -> [3]), then skipped
    assert poller.stats.retries == 2 and poller.stats.bisects == 2
    assert handler.timeline.count(("fail", ids[3])) == 1 + 2 + 2 == poller.stats.partial_failures
    assert [s["correlation_id"] for s in poller.stats.skipped] == [ids[3]]
    assert len(dead) == 1 and [record_correlation_id(r) for r in dead[0][0]] == [ids[3]]
    assert "gave up after 3 attempts" in dead[0][1]
    # every good record after the poison was processed (at least once: Lambda re-delivers them with the retry)
    assert all(handler.timeline.count(("ok", c)) >= 1 for c in ids[4:])
    assert poller.poll_once() == 0  # nothing new: the iterator moved past everything


def test_a_raising_handler_jams_the_shard_until_bisect_isolates_the_poison(own_aws: Callable[[str], Any]) -> None:
    streams, arn, ids = _stream(own_aws, 15, poison={1})
    handler = Recorder("raise")
    poller = StreamPoller(
        streams,
        arn,
        handler,
        PollerSettings(batch_size=5, max_retries=2, retry_delay=0.001, report_batch_item_failures=False),
    )
    poller.poll_once()
    skip_at = handler.last("fail", ids[1])
    # the jam: nothing of the later batches ran before the poison was given up on
    assert all(handler.first("ok", c) > skip_at for c in ids[5:])
    assert handler.timeline.count(("fail", ids[1])) >= 3
    assert [s["correlation_id"] for s in poller.stats.skipped] == [ids[1]]
    # the records sharing the poison's batch ran again and again (at least once semantics), none was lost
    assert handler.timeline.count(("ok", ids[0])) >= 3
    assert all(("ok", c) in handler.timeline for c in ids if c != ids[1])
    assert poller.stats.longest_jam_seconds > 0


def test_no_failures_means_one_invocation_per_batch(own_aws: Callable[[str], Any]) -> None:
    streams, arn, ids = _stream(own_aws, 12, poison=set())
    handler = Recorder("partial")
    poller = StreamPoller(streams, arn, handler, PollerSettings(batch_size=5))
    assert poller.poll_once() == 12
    assert poller.stats.invocations == 3 and poller.stats.retries == 0 and not poller.stats.skipped
    assert [c for _, c in handler.timeline] == ids  # in stream order


def test_lanes_keep_other_keys_moving_while_one_lane_is_jammed(own_aws: Callable[[str], Any]) -> None:
    """ParallelizationFactor: the poison holds up only its own lane; the rest of the shard is processed."""
    streams, arn, ids = _stream(own_aws, 24, poison={0})

    def lane(cid: str) -> int:
        return lane_of({"dynamodb": {"Keys": {"correlation_id": {"S": cid}}}}, 4)

    other_lanes = {c for c in ids if lane(c) != lane(ids[0])}
    assert other_lanes  # the keys spread over the lanes
    others_done = threading.Event()
    seen: set[str] = set()
    lock = threading.Lock()
    poison_waited: list[bool] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            if _is_poison(record):
                # block the poison's lane until every record of the other lanes is done (or give up after 20 s)
                poison_waited.append(others_done.wait(20))
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                continue
            with lock:
                seen.add(str(record_correlation_id(record)))
                if other_lanes <= seen:
                    others_done.set()
        return {"batchItemFailures": failures}

    settings = PollerSettings(batch_size=4, max_retries=1, retry_delay=0.001, parallelization_factor=4)
    poller = StreamPoller(streams, arn, handler, settings)
    stop = threading.Event()
    worker = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not poller.stats.skipped:
        time.sleep(0.02)
    stop.set()
    worker.join(timeout=10)
    assert poison_waited and poison_waited[0] is True  # the others finished while the poison's lane was stuck
    assert seen == set(ids[1:])
    assert [s["correlation_id"] for s in poller.stats.skipped] == [ids[0]]


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="parallelization_factor"):
        PollerSettings(parallelization_factor=11)
    with pytest.raises(ValueError, match="batch_size"):
        PollerSettings(batch_size=0)
