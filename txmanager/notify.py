"""Tell people a rollback or commit finally failed: one SNS message per transaction, with what is left to fix."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from corrtrace.txmanager import eventlog
from corrtrace.txmanager.settings import TxManagerSettings
from corrtrace.txmanager.store import Participant, Transaction


class Notifier:
    """Publishes final failures to ``settings.sns_topic_arn`` (does nothing when no topic is configured)."""

    def __init__(self, settings: TxManagerSettings, client: Any | None = None) -> None:
        self.topic_arn = settings.sns_topic_arn
        self._client = client
        self._settings = settings

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "sns",
                region_name=self._settings.region,
                endpoint_url=self._settings.sns_endpoint or None,
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )
        return self._client

    def failure(self, tx: Transaction, participants: list[Participant]) -> bool:
        """Publish the failure notice; True when sent (or nothing to send to), False when SNS refused it."""
        if not self.topic_arn:
            return True
        failed = [p for p in participants if p.state == "failed"]
        body = {
            "correlation_id": tx.correlation_id,
            "action": tx.action,
            "state": tx.state,
            "reason": tx.reason,
            "source": tx.source,
            "failed_participants": [
                {"service": p.service, "attempts": p.attempts, "last_status": p.last_status, "last_error": p.last_error}
                for p in failed
            ],
            "participants": [{"service": p.service, "state": p.state} for p in participants],
        }
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=f"corrtrace {tx.action} failed"[:100],
                Message=json.dumps(body, sort_keys=True),
                MessageAttributes={
                    "correlation_id": {"DataType": "String", "StringValue": tx.correlation_id},
                    "action": {"DataType": "String", "StringValue": tx.action or "unknown"},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            eventlog.note(
                tx.correlation_id,
                f"could not publish the failure notice to SNS ({type(exc).__name__}); it is retried on resume",
                level=logging.ERROR,
            )
            return False
        return True
