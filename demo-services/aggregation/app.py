"""Aggregation (FastAPI): counts orders, payments and shipments per minute from the pub/sub topic.

The talk's advice for reporting: push events through pub/sub (SNS -> SQS here) into an aggregation
service, rather than a composite service that calls every other service.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from corrtrace.demo import wiring
from corrtrace.demo.aggregation.store import CountsStore
from corrtrace.demo.runtime import Runtime
from fastapi import FastAPI

from corrtrace.context import bind_correlation_id


def consume(rt: Runtime, store: CountsStore, stop: threading.Event) -> None:
    sqs = rt.aws("sqs")
    url = rt.mesh.aggregation_queue_url
    while not stop.is_set():
        try:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            ).get("Messages", [])
        except Exception:
            rt.log.exception("receive failed; trying again", extra={"event.action": "sqs-receive"})
            stop.wait(0.5)
            continue
        for message in messages:
            body = json.loads(message["Body"])
            with bind_correlation_id(body.get("correlation_id")):
                minute = time.strftime("%Y-%m-%dT%H:%M", time.gmtime())
                if store.add(message["MessageId"], minute, str(body.get("kind"))):
                    rt.log.info("counted %s", body.get("kind"), extra={"event.action": "aggregate"})
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )


def build(rt: Runtime) -> Any:
    store = CountsStore(rt.mesh.db_path("aggregation"))
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        worker = threading.Thread(target=consume, args=(rt, store, stop), daemon=True, name="aggregation")
        worker.start()
        yield
        stop.set()
        worker.join(timeout=3)

    app = FastAPI(title="aggregation", lifespan=lifespan)

    @app.get("/report")
    def report() -> dict[str, Any]:
        rows = store.query("SELECT minute, kind, n FROM counts ORDER BY minute, kind")
        totals: dict[str, int] = {}
        for row in rows:
            totals[str(row["kind"])] = totals.get(str(row["kind"]), 0) + int(row["n"])  # type: ignore[call-overload]
        return {"per_minute": rows, "totals": totals}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"service": "aggregation", "ok": True}

    return wiring.asgi(app, rt.service_map)
