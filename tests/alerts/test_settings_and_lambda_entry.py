"""The ``alerts`` config section and the Lambda entry point configured from the environment."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from corrtrace.alerts import handler as handler_module
from corrtrace.alerts.settings import load_settings

from corrtrace.config import ConfigError


def test_settings_file_env_and_secret(tmp_path: Path) -> None:
    file = tmp_path / "corrtrace.yaml"
    file.write_text("alerts:\n  txmanager_url: http://manager:8700\n  log_groups: [/a, /b]\n")
    env = {"CORRTRACE_ALERTS_REGION": "eu-west-1", "CORRTRACE_TXMANAGER_SECRET": "s3cret"}
    settings = load_settings(str(file), env)
    assert settings.txmanager_url == "http://manager:8700" and settings.log_groups == ["/a", "/b"]
    assert settings.region == "eu-west-1" and settings.txmanager_secret == "s3cret"
    assert "s3cret" not in repr(settings)
    file.write_text("alerts:\n  txmanager_secret: leaked\n")
    with pytest.raises(ConfigError, match=r"alerts\.txmanager_secret"):
        load_settings(str(file), {})


def test_lambda_entry_point_from_environment(receiver: Any, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRTRACE_ALERTS_TXMANAGER_URL", receiver.url)
    monkeypatch.setenv("CORRTRACE_TXMANAGER_SECRET", receiver.secret)
    monkeypatch.delenv("CORRTRACE_CONFIG", raising=False)
    monkeypatch.setattr(handler_module, "_HANDLER", None)
    payload = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/corrtrace/services",
        "logStream": "s",
        "subscriptionFilters": ["corrtrace-business-failures-handler"],
        "logEvents": [
            {
                "id": "1",
                "timestamp": 1,
                "message": orjson.dumps({"correlation_id": "L-1", "event": {"outcome": "failure"}}).decode(),
            },
            {
                "id": "2",
                "timestamp": 2,
                "message": orjson.dumps({"correlation_id": "L-2", "event": {"outcome": "success"}}).decode(),
            },
        ],
    }
    event = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}
    result = handler_module.handler(event, None)
    assert result["rolled_back"] == ["L-1"]
    assert receiver.ids() == ["L-1"]
