"""Settings of the transaction manager (config section ``txmanager``), as one dataclass.

The shared secret is accepted only from the environment (``CORRTRACE_TXMANAGER_SECRET``) or a file named by
``secret_file``: a secret written into the YAML file ends up in repositories, so it is refused there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corrtrace.config import ConfigError, HttpUrl, Port, Region, load_section, read_file, shown

SECTION = "txmanager"
OPEN_TTL_ACTIONS = ("expire", "rollback")
FAILURE_CHANNELS = ("dynamodb", "sqs", "sns", "kinesis")


@dataclass
class TxManagerSettings:
    """Where state lives, how hard to retry a participant, and whom to tell when a rollback finally fails."""

    table_name: str = "corrtrace-transactions"
    dynamodb_endpoint: HttpUrl | None = None
    sns_endpoint: HttpUrl | None = None
    region: Region = "us-east-1"
    secret: str | None = field(default=None, repr=False)
    secret_file: str | None = None
    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 30.0
    participant_timeout: float = 10.0
    lease_margin: float = 5.0
    poll_interval: float = 0.25
    resume_interval: float = 30.0
    # a participant still failing (or timing out) after max_attempts is retried in the background, slowly:
    # slow_retry_initial, doubling up to slow_retry_max, for slow_retry_for seconds (0: no slow retry)
    slow_retry_initial: float = 60.0
    slow_retry_max: float = 6 * 3600.0
    slow_retry_for: float = 24 * 3600.0
    # an open transaction (never rolled back nor committed) older than open_ttl is ended by the sweep:
    # open_ttl_action "expire" marks it expired, "rollback" rolls its participants back (open_ttl 0: never)
    open_ttl: float = 24 * 3600.0
    open_ttl_action: str = "expire"
    # finished items are deleted by DynamoDB's TTL this long after they finish (0: kept forever)
    finished_retention: float = 7 * 24 * 3600.0
    sns_topic_arn: str | None = None
    service_urls: dict[str, str] = field(default_factory=dict)
    discovery_backend: str | None = None  # Elasticsearch URL or embedded-store path (corrtrace.collector)
    discovery_index_prefix: str | None = None
    rollback_path: str = "/corrtrace/rollback/{id}"
    commit_path: str = "/corrtrace/commit/{id}"
    max_body_bytes: int = 65536
    host: str = "127.0.0.1"
    port: Port = 8700
    service_name: str = "txmanager"
    # the failure channel (failures.py, triggers.py): where services write failure reports, and who reads them
    failure_channel: str = "dynamodb"  # dynamodb (a table with a stream) | sqs | sns (a topic into a queue) | kinesis
    failure_target: str = "corrtrace-failures"  # the table, queue, topic or stream name
    failure_dlq: str = "corrtrace-failures-dlq"  # the on-failure queue (malformed or unusable records)
    failure_endpoint: HttpUrl | None = None  # AWS endpoint of the channel (default: dynamodb_endpoint for a table)
    manager_url: HttpUrl | None = None  # where the trigger calls the manager (default http://host:port)

    def __post_init__(self) -> None:
        if self.failure_channel not in FAILURE_CHANNELS:
            raise ConfigError(
                f"{SECTION}.failure_channel: expected one of {', '.join(FAILURE_CHANNELS)}, "
                f"got {shown(self.failure_channel)}"
            )
        if self.max_attempts < 1:
            raise ConfigError(f"{SECTION}.max_attempts: expected at least 1, got {self.max_attempts}")
        for name in ("backoff_initial", "backoff_max", "participant_timeout", "poll_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{SECTION}.{name}: expected a positive number, got {getattr(self, name)}")
        for name in ("slow_retry_initial", "slow_retry_max"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{SECTION}.{name}: expected a positive number, got {getattr(self, name)}")
        for name in ("slow_retry_for", "open_ttl", "finished_retention"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{SECTION}.{name}: expected 0 (off) or a positive number, got {getattr(self, name)}")
        if self.open_ttl_action not in OPEN_TTL_ACTIONS:
            raise ConfigError(
                f"{SECTION}.open_ttl_action: expected one of {', '.join(OPEN_TTL_ACTIONS)}, "
                f"got {shown(self.open_ttl_action)}"
            )
        if self.backoff_multiplier < 1:
            raise ConfigError(f"{SECTION}.backoff_multiplier: expected at least 1, got {self.backoff_multiplier}")

    @property
    def lease_seconds(self) -> float:
        """How long a claimed participant call is ours: the call's timeout plus a margin for our own work."""
        return self.participant_timeout + self.lease_margin

    @property
    def resolved_manager_url(self) -> str:
        return (self.manager_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_failure_endpoint(self) -> str | None:
        if self.failure_endpoint:
            return self.failure_endpoint
        return self.dynamodb_endpoint if self.failure_channel == "dynamodb" else None

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (exponential from ``backoff_initial``, capped)."""
        return float(min(self.backoff_max, self.backoff_initial * self.backoff_multiplier ** max(0, attempt - 1)))

    def slow_backoff(self, slow_attempt: int) -> float:
        """Delay before slow retry ``slow_attempt + 1`` (doubling from ``slow_retry_initial``, capped)."""
        return float(min(self.slow_retry_max, self.slow_retry_initial * 2.0 ** min(max(0, slow_attempt), 64)))

    def resolved_secret(self) -> str:
        """The shared secret from the environment or ``secret_file``; raises with what to set when missing."""
        if self.secret:
            return self.secret
        if self.secret_file:
            try:
                value = Path(self.secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{SECTION}.secret_file: cannot read it ({exc.strerror})") from None
            if value:
                return value
            raise ConfigError(f"{SECTION}.secret_file: the file is empty")
        raise ConfigError(f"{SECTION}.secret: not set; export CORRTRACE_TXMANAGER_SECRET or set txmanager.secret_file")


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> TxManagerSettings:
    """Read the ``txmanager`` section plus ``CORRTRACE_TXMANAGER_*`` overrides; a secret in the file is refused."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = read_file(path, env)
    section = raw.get(SECTION)
    if isinstance(section, dict) and "secret" in section:
        raise ConfigError(
            f"{SECTION}.secret: not allowed in the configuration file; use CORRTRACE_TXMANAGER_SECRET or secret_file"
        )
    return load_section(SECTION, TxManagerSettings, env=env, data=raw)
