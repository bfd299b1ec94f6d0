"""Settings of the alerts part (config section ``alerts``). The manager's secret comes only from the
environment (``CORRTRACE_ALERTS_TXMANAGER_SECRET`` or ``CORRTRACE_TXMANAGER_SECRET``), never the YAML file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from corrtrace.config import ConfigError, load_section


@dataclass
class AlertsSettings:
    """Where the alert file is, which manager to call, and how to reach AWS."""

    file: str | None = None
    log_groups: list[str] = field(default_factory=list)
    txmanager_url: str = "http://127.0.0.1:8700"
    txmanager_secret: str | None = field(default=None, repr=False)
    region: str = "us-east-1"
    endpoint_url: str | None = None
    handler_arn: str | None = None
    publish_metrics: bool = False
    # where `alerts evaluate --follow` keeps alarm states across restarts; empty: the per-user data directory
    state_file: str | None = None


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> AlertsSettings:
    env = os.environ if env is None else env
    settings = load_section(
        "alerts", AlertsSettings, path=path, env={k: v for k, v in env.items() if "SECRET" not in k}
    )
    if settings.txmanager_secret:
        raise ConfigError("alerts.txmanager_secret: set it in the environment, not in the configuration file")
    settings.txmanager_secret = env.get("CORRTRACE_ALERTS_TXMANAGER_SECRET") or env.get("CORRTRACE_TXMANAGER_SECRET")
    return settings
