"""``corrtrace txmanager``: ``serve`` the manager, ``init`` its DynamoDB table, ``status``/``rollback``/``commit``
a transaction from the shell. Exit codes: 0 ok, 1 failed, 2 bad input (configuration included).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from typing import Any

import click
from corrtrace.txmanager.settings import TxManagerSettings, load_settings

from corrtrace.cli import http_url
from corrtrace.config import ConfigError

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="corrtrace.yaml (or CORRTRACE_CONFIG).",
)

LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


def _settings(config_path: str | None) -> TxManagerSettings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        click.echo(f"corrtrace txmanager: {exc}", err=True)
        sys.exit(2)


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


@click.group("txmanager")
def txmanager() -> None:
    """The transaction manager: rolls back (or commits) every service a request touched."""


@txmanager.command()
@config_option
@click.option("--host", default=None, help="Listen address (default: txmanager.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Listen port (default: txmanager.port).")
@click.option("--log-level", default="INFO", show_default=True, type=LOG_LEVELS)
@click.option(
    "--follow-failures",
    is_flag=True,
    help="Also read the failure channel and trigger from it "
    "(the local stand-in for the Lambda trigger; see follow-failures).",
)
def serve(config_path: str | None, host: str | None, port: int | None, log_level: str, follow_failures: bool) -> None:
    """Run the manager's HTTP API with uvicorn; unfinished rollbacks resume at start."""
    import threading

    import uvicorn
    from botocore.exceptions import BotoCoreError, ClientError
    from corrtrace.txmanager.app import create_app
    from corrtrace.txmanager.store import Store

    from corrtrace.logging import configure

    settings = _settings(config_path)
    store = Store(settings)
    try:
        store.client.describe_table(TableName=settings.table_name)
    except (BotoCoreError, ClientError) as exc:
        click.echo(
            f"corrtrace txmanager: table {settings.table_name} is not usable ({type(exc).__name__}); "
            "create it with `corrtrace txmanager init` and check the DynamoDB endpoint and credentials",
            err=True,
        )
        sys.exit(1)
    configure(settings.service_name, level=log_level.upper())
    try:
        app = create_app(settings, store=store)
    except ConfigError as exc:
        click.echo(f"corrtrace txmanager: {exc}", err=True)
        sys.exit(2)
    stop = threading.Event()
    if follow_failures:
        from corrtrace.txmanager.follow import follow_in_thread

        bound = replace(settings, host=host or settings.host, port=port or settings.port)
        _or_exit(lambda: follow_in_thread(bound, stop))
    try:
        uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="warning", access_log=False)
    finally:
        stop.set()


def _or_exit(start: Any) -> Any:
    """Run a setup step of the failure channel; a missing resource or bad setting exits with one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return start()
    except ConfigError as exc:
        click.echo(f"corrtrace txmanager: {exc}", err=True)
        sys.exit(2)
    except (BotoCoreError, ClientError, ValueError) as exc:
        click.echo(
            f"corrtrace txmanager: the failure channel is not usable ({type(exc).__name__}: {exc}); "
            "create it with `corrtrace txmanager init` and check failure_endpoint and the credentials",
            err=True,
        )
        sys.exit(1)


@txmanager.command("follow-failures")
@config_option
@click.option("--log-level", default="INFO", show_default=True, type=LOG_LEVELS)
def follow_failures(config_path: str | None, log_level: str) -> None:
    """Read the failure channel (stream or queue) like Lambda's event-source mapping and call the manager."""
    import signal
    import threading

    from corrtrace.txmanager.follow import build_follower

    from corrtrace.logging import configure

    settings = _settings(config_path)
    configure(settings.service_name, level=log_level.upper())
    follower = _or_exit(lambda: build_follower(settings))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(
        f"corrtrace txmanager: following {settings.failure_channel} {settings.failure_target} "
        f"for {settings.resolved_manager_url}",
        err=True,
    )
    follower.run(stop)


@txmanager.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(config_path: str | None, as_json: bool) -> None:
    """Create the DynamoDB table and the failure channel with its on-failure queue (idempotent)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from corrtrace.txmanager.failures import create_resources
    from corrtrace.txmanager.store import Store

    settings = _settings(config_path)
    try:
        created = Store(settings).create_table()
    except (BotoCoreError, ClientError) as exc:
        click.echo(f"corrtrace txmanager init: cannot create table {settings.table_name}: {exc}", err=True)
        sys.exit(1)
    try:
        channel = create_resources(settings)
    except (BotoCoreError, ClientError) as exc:
        click.echo(
            f"corrtrace txmanager init: cannot create the failure channel {settings.failure_channel} "
            f"{settings.failure_target}: {exc}",
            err=True,
        )
        sys.exit(1)
    _emit({"table": settings.table_name, "created": created, "failure_channel": channel}, as_json)


def _client_call(config_path: str | None, url: str | None, fn: str, correlation_id: str, **kwargs: Any) -> Any:
    from corrtrace.txmanager.client import TxManagerClient, TxManagerError

    settings = _settings(config_path)
    try:
        secret = settings.resolved_secret()
    except ConfigError as exc:
        click.echo(f"corrtrace txmanager: {exc}", err=True)
        sys.exit(2)
    manager = url or f"http://{settings.host}:{settings.port}"
    try:
        with TxManagerClient(manager, secret) as client:
            return getattr(client, fn)(correlation_id, **kwargs)
    except ValueError as exc:
        click.echo(f"corrtrace txmanager: {exc}", err=True)
        sys.exit(2)
    except TxManagerError as exc:
        click.echo(f"corrtrace txmanager: {exc}", err=True)
        sys.exit(1)


url_option = click.option(
    "--url",
    default=None,
    callback=http_url,
    help="Manager URL (default: http://txmanager.host:port).",
)


@txmanager.command()
@config_option
@url_option
@click.argument("correlation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def status(config_path: str | None, url: str | None, correlation_id: str, as_json: bool) -> None:
    """Show a transaction and its participants, and when the next background retry is due."""
    data = _client_call(config_path, url, "status", correlation_id)
    if not as_json and data.get("next_attempt_at"):
        data = {**data, "next_attempt_at": _when(float(data["next_attempt_at"]))}
    _emit(data, as_json)


def _when(epoch: float) -> str:
    """``2026-11-30T12:00:00Z (in 59 s)``: a due time an operator reads at a glance."""
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    left = epoch - time.time()
    return f"{at} (in {left:.0f} s)" if left >= 0 else f"{at} (due now; at the next sweep)"


def _trigger_command(action: str) -> click.Command:
    """``rollback`` and ``commit`` take the same options and differ only in the client call they make."""

    @txmanager.command(action, help=f"Trigger the {action} of every participant of CORRELATION_ID.")
    @config_option
    @url_option
    @click.argument("correlation_id")
    @click.option("--reason", default=None)
    @click.option("--source", default="cli")
    @click.option("--retry-failed", is_flag=True, help="Give participants that failed for good a new attempt budget.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def trigger(
        config_path: str | None,
        url: str | None,
        correlation_id: str,
        reason: str | None,
        source: str,
        retry_failed: bool,
        as_json: bool,
    ) -> None:
        _emit(
            _client_call(
                config_path, url, action, correlation_id, reason=reason, source=source, retry_failed=retry_failed
            ),
            as_json,
        )

    return trigger


rollback = _trigger_command("rollback")
commit = _trigger_command("commit")
