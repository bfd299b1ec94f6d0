"""Follow the failure channel without AWS Lambda: a local event-source mapping (``corrtrace.eventsource``) feeds
the trigger (``triggers.py``) as Lambda would. ``corrtrace txmanager follow-failures`` or ``serve --follow-failures``.

Streams are retried until the manager takes the batch (Lambda's ``MaximumRetryAttempts=-1``): a failure report
must not be skipped because the manager was down. Malformed records never jam: the trigger moves them to the
on-failure queue itself. A restarted follower reads the stream from its start again (what is still retained):
duplicates are counted by the manager, not repeated.
"""

from __future__ import annotations

import threading
from typing import Any

from corrtrace.middleware.aws_lambda import correlated_handler
from corrtrace.txmanager.failures import aws_client, queue_url, stream_arn, subscription_queue
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.triggers import FailureTrigger

from corrtrace.eventsource import KinesisPoller, PollerSettings, QueuePoller, StreamPoller

FUNCTION_NAME = "corrtrace-txmanager-trigger"


def poller_settings(**overrides: Any) -> PollerSettings:
    values: dict[str, Any] = {
        "batch_size": 10,
        "max_retries": -1,
        "retry_delay": 0.2,
        "max_retry_delay": 5.0,
        "poll_interval": 0.2,
        "parallelization_factor": 2,
        "function_name": FUNCTION_NAME,
    }
    values.update(overrides)
    return PollerSettings(**values)


def build_follower(
    settings: TxManagerSettings, trigger: FailureTrigger | None = None, poller: PollerSettings | None = None
) -> StreamPoller | QueuePoller:
    """The poller of the configured channel, invoking the trigger like Lambda would."""
    trigger = trigger or FailureTrigger(settings)
    handler = correlated_handler(lambda event, context: trigger.handle(event))
    poller = poller or poller_settings()
    channel = settings.failure_channel
    if channel == "dynamodb":
        return StreamPoller(
            aws_client(settings, "dynamodbstreams"), stream_arn(settings), handler, poller, region=settings.region
        )
    if channel == "kinesis":
        kinesis = aws_client(settings, "kinesis")
        summary = kinesis.describe_stream_summary(StreamName=settings.failure_target)["StreamDescriptionSummary"]
        arn = summary["StreamARN"]
        return KinesisPoller(kinesis, arn, handler, poller, region=settings.region)
    sqs = aws_client(settings, "sqs")
    name = settings.failure_target if channel == "sqs" else subscription_queue(settings)
    return QueuePoller(sqs, queue_url(sqs, name), handler, poller, region=settings.region)


def follow_in_thread(settings: TxManagerSettings, stop: threading.Event) -> threading.Thread:
    """Start following in a daemon thread (``serve --follow-failures``); ``stop`` ends it."""
    follower = build_follower(settings)
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True, name="follow-failures")
    thread.start()
    return thread
