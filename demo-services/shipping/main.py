"""The shipping process: the stream poller driving the Lambda handler, plus a tiny status endpoint."""

from __future__ import annotations

import json
import threading
from typing import Any

from corrtrace.demo import wiring
from corrtrace.demo.aws import stream_arn
from corrtrace.demo.runtime import Runtime
from corrtrace.demo.shipping.handler import make_handler
from corrtrace.demo.shipping.store import ShippingStore
from corrtrace.demo.status import run_poller

from corrtrace.eventsource import PollerSettings, StreamPoller


def build_poller(rt: Runtime) -> StreamPoller:
    demo = rt.mesh.demo()
    store = ShippingStore(rt.mesh.db_path("shipping"))

    def publish(kind: str, cid: str, order_id: str) -> None:
        rt.publish(kind, cid, order_id)

    sqs = rt.aws("sqs")

    def on_failure(records: list[dict[str, Any]], reason: str) -> None:
        """Lambda's on-failure destination: the records' metadata goes to an SQS queue."""
        for record in records:
            sqs.send_message(
                QueueUrl=rt.mesh.shipping_dlq_url,
                MessageBody=json.dumps({"reason": reason, "record": record}, default=str),
            )

    settings = PollerSettings(
        batch_size=demo.stream_batch_size,
        max_retries=demo.stream_max_retries,
        retry_delay=demo.stream_retry_delay_ms / 1000,
        poll_interval=demo.stream_poll_ms / 1000,
        parallelization_factor=demo.stream_parallelization,
        function_name="shipping",
    )

    def commit(cid: str) -> None:
        """Shipped: the whole request is done, so every participant may make its staged work final. Written to
        the manager's channel like a failure (action ``commit``): a manager down for a moment loses nothing."""
        rt.failures.report(cid, "shipped", "commit")

    handler = wiring.lambda_handler(make_handler(store, publish, commit))
    return StreamPoller(rt.aws("dynamodbstreams"), stream_arn(rt.mesh), handler, settings, on_failure, rt.mesh.region)


def serve(rt: Runtime, stop: threading.Event) -> None:
    run_poller("shipping", rt.mesh.ports["shipping"], build_poller(rt), stop)
