"""The failure trigger takes any batch: every field of the sample stream and queue events replaced by odd values
gives a batch response, never an exception (one would make Lambda retry the whole batch: a jam). Records it
cannot read go to the on-failure queue; the manager here is down, so a well-formed report is retried."""

from __future__ import annotations

import json
from typing import Any

import pytest
from corrtrace.txmanager import triggers
from corrtrace.txmanager.failures import create_resources
from corrtrace.txmanager.settings import TxManagerSettings

from tests.middleware.conftest import load_fixture
from tests.shapes import ODD, variants

REPORT = json.dumps({"correlation_id": "req-1", "action": "rollback", "reason": "declined", "source": "payment"})


def _event(fixture: str) -> dict[str, Any]:
    event = load_fixture(fixture)
    del event["Records"][1:]  # one record: its fields are what varies
    if fixture == "sqsEvent.json":
        event["Records"][0]["body"] = REPORT
    return event


@pytest.mark.parametrize("fixture", ["sqsEvent.json", "kinesisStreamEvent.json", "dynamoStreamEvent.json"])
def test_any_field_of_any_shape_gives_a_batch_response(fixture: str, channel_settings: TxManagerSettings) -> None:
    create_resources(channel_settings)
    trigger = triggers.FailureTrigger(channel_settings)  # its manager_url has no server: reports are retried
    event = _event(fixture)
    cases = 0
    for variant in variants(event, ODD):
        assert set(trigger.handle(variant)) == {"batchItemFailures"}
        cases += 1
    assert cases > len(ODD)
