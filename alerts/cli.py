"""``corrtrace alerts``: test-pattern (TestMetricFilter offline), deploy (CloudWatch), evaluate (local)."""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from corrtrace.alerts.definitions import Alert, AlertDefinitionError, builtin_alerts, load_alerts
from corrtrace.alerts.patterns import PatternError, compile_pattern
from corrtrace.alerts.tail import MAX_LINE

from corrtrace.config import ConfigError, user_data_dir


def _fail(message: str, code: int = 2) -> None:
    click.echo(message.splitlines()[0] if message else "error", err=True)
    sys.exit(code)


def _seconds(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):  # NaN would never be reached: a hang
        raise click.BadParameter(f"expected a finite number of seconds > 0, got {value}")
    return value


@click.group("alerts")
def alerts() -> None:
    """CloudWatch Logs filter-pattern alerts: test patterns, deploy alerts, evaluate them locally."""


@alerts.command("test-pattern")
@click.argument("arguments", nargs=-1, metavar="[PATTERN] [EVENT]...")
@click.option("--pattern", "-p", help="A CloudWatch Logs filter pattern (or the first argument).")
@click.option("--event", "events", multiple=True, help="A log event message (repeatable; or the arguments).")
@click.option("--events-file", type=click.Path(dir_okay=False, path_type=Path), help="One message per line.")
@click.option(
    "--mode",
    type=click.Choice(["exact", "rest"]),
    default="exact",
    show_default=True,
    help="Space-delimited field count: exact, or the last field takes the rest of the line.",
)
@click.option("--json", "as_json", is_flag=True, help="Print TestMetricFilter's response shape.")
def test_pattern(
    arguments: tuple[str, ...],
    pattern: str | None,
    events: tuple[str, ...],
    events_file: Path | None,
    mode: str,
    as_json: bool,
) -> None:
    """Test PATTERN against messages like the TestMetricFilter API (eventNumber counts from 0).

    \b
    corrtrace alerts test-pattern '{ $.level = "ERROR" }' '{"level": "ERROR"}' '{"level": "INFO"}'
    corrtrace alerts test-pattern -p ERROR --event "ERROR boom" --events-file app.log
    """
    if pattern is None:
        if not arguments:
            _fail("give a PATTERN (the first argument, or -p PATTERN)")
        pattern, arguments = arguments[0], arguments[1:]
    events = (*events, *arguments)
    try:
        compiled = compile_pattern(pattern, delimited_mode=mode)  # type: ignore[arg-type]
    except PatternError as exc:
        _fail(str(exc))
    messages = list(events)
    if events_file is not None:
        try:
            messages += events_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            _fail(f"cannot read {events_file}: {exc.strerror}")
    if not messages:
        _fail("give at least one EVENT (an argument after the pattern, --event or --events-file)")
    matches: list[dict[str, Any]] = []
    for number, message in enumerate(messages):
        values = compiled.extract(message)
        if values is not None:
            matches.append({"eventNumber": number, "eventMessage": message, "extractedValues": values})
    if as_json:
        click.echo(json.dumps({"matches": matches}))
        return
    for m in matches:
        extra = f"  {json.dumps(m['extractedValues'])}" if m["extractedValues"] else ""
        click.echo(f"{m['eventNumber']}: {m['eventMessage']}{extra}")
    click.echo(f"{len(matches)} of {len(messages)} events match", err=True)


def _load(file: Path | None, log_groups: tuple[str, ...]) -> list[Alert]:
    try:
        if file is not None:
            return load_alerts(file)
        return builtin_alerts(list(log_groups) or None)
    except AlertDefinitionError as exc:
        _fail(str(exc))
        raise


@alerts.command("deploy")
@click.option("--file", "-f", type=click.Path(dir_okay=False, path_type=Path), help="Alert file (default: built-ins).")
@click.option("--log-group", "log_groups", multiple=True, help="Log groups for the built-in alerts.")
@click.option("--handler-arn", help="ARN of the alert-handler Lambda (subscription and alarm target).")
@click.option("--dry-run", is_flag=True, help="Print the plan (create / update / delete) without making it.")
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Delete corrtrace's filters, alarms and permissions that the file no longer holds.",
)
@click.option("--region", default=None, help="AWS region (default: config alerts.region).")
@click.option("--endpoint-url", default=None, help="AWS endpoint (e.g. a moto server).")
@click.option("--json", "as_json", is_flag=True)
def deploy(
    file: Path | None,
    log_groups: tuple[str, ...],
    handler_arn: str | None,
    dry_run: bool,
    prune: bool,
    region: str | None,
    endpoint_url: str | None,
    as_json: bool,
) -> None:
    """Create, update or delete metric filters, alarms and subscription filters so CloudWatch holds exactly the
    alert file (idempotent; only corrtrace's own resources are ever deleted)."""
    import boto3
    import botocore.exceptions
    from corrtrace.alerts.deploy import Deployer
    from corrtrace.alerts.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
    chosen = _load(file, log_groups)
    region = region or settings.region
    endpoint_url = endpoint_url or settings.endpoint_url
    try:
        deployer = Deployer(
            boto3.client("logs", region_name=region, endpoint_url=endpoint_url),
            boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url),
            handler_arn=handler_arn or settings.handler_arn,
            lambda_client=boto3.client("lambda", region_name=region, endpoint_url=endpoint_url),
        )
    except (ValueError, botocore.exceptions.BotoCoreError) as exc:  # an endpoint or region botocore refuses
        _fail(f"--region {region!r} / --endpoint-url {endpoint_url!r}: {exc}")
    try:
        changes = deployer.deploy(chosen, dry_run=dry_run, prune=prune)
    except AlertDefinitionError as exc:
        _fail(str(exc))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        _fail(f"deploy failed: {exc}", 1)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "changes": [c.to_dict() for c in changes]}))
        return
    for change in changes:
        click.echo(change.describe())
    counts = {kind: sum(1 for c in changes if c.action == kind) for kind in ("create", "update", "delete")}
    summary = ", ".join(f"{n} to {kind}" if dry_run else f"{n} {kind}d" for kind, n in counts.items())
    click.echo(f"{summary}{' (dry run, nothing written)' if dry_run else ''}", err=True)


@alerts.command("evaluate")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--file",
    "-f",
    "alert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Alert file (default: built-ins).",
)
@click.option("--log-group", default=None, help="Treat the lines as coming from this log group.")
@click.option("--txmanager-url", default=None, help="Call this transaction manager on ALARM (secret from env).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alarm transition or jam.")
@click.option("--follow", is_flag=True, help="Keep following FILES (tail -F) and evaluate on the wall clock.")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep alarm states here across restarts (default with --follow: alerts.state_file, else the per-user "
    "data directory).",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    callback=lambda ctx, param, value: _seconds(value),
    help="With --follow: stop after this many seconds.",
)
def evaluate(
    files: tuple[Path, ...],
    alert_file: Path | None,
    log_group: str | None,
    txmanager_url: str | None,
    as_json: bool,
    follow: bool,
    duration: float | None,
    state_file: Path | None,
) -> None:
    """Evaluate the alerts over JSON log lines (FILES or stdin), using the events' own timestamps as clock;
    with --follow, tail FILES live and evaluate the alarms every second."""
    from corrtrace.alerts.actions import Action, AlarmNotification, CallbackAction, TxManagerAction
    from corrtrace.alerts.engine import AlertEngine, event_time
    from corrtrace.alerts.settings import load_settings

    chosen = _load(alert_file, ())
    # transitions and jams are printed below; problems (a damaged state file, a failed action) one line each
    problems = logging.StreamHandler(sys.stderr)
    problems.setLevel(logging.WARNING)
    problems.addFilter(lambda r: getattr(r, "event.action", None) not in ("alarm", "stream-jam"))
    problems.setFormatter(logging.Formatter("corrtrace alerts: %(message)s"))
    logging.getLogger("corrtrace.alerts").addHandler(problems)
    out: list[dict[str, Any]] = []

    def report(n: AlarmNotification) -> None:
        item = n.to_dict()
        out.append(item)
        if as_json:
            click.echo(json.dumps(item))
        else:
            ids = ", ".join(n.correlation_ids) or "-"
            click.echo(f"{n.kind} {n.alarm_name}: {n.previous_state} -> {n.state} ({n.reason}); ids: {ids}")

    actions: dict[str, Action] = {}
    if txmanager_url:
        secret = load_settings().txmanager_secret
        if not secret:
            _fail("set CORRTRACE_TXMANAGER_SECRET to call the transaction manager")
        actions["txmanager"] = TxManagerAction.from_url(txmanager_url, str(secret))
    reporter = CallbackAction(report)
    if follow:
        if not files or any(str(p) == "-" for p in files):
            _fail("--follow needs log FILES (not stdin)")
        state_file = state_file or _default_state_file()
        click.echo(f"alarm states kept in {state_file}", err=True)
        _follow(
            chosen, [str(p) for p in files], _with_reporter(chosen, actions, reporter), log_group, duration, state_file
        )
        return
    now = [0.0]
    engine = AlertEngine(chosen, _with_reporter(chosen, actions, reporter), clock=lambda: now[0], state_file=state_file)
    next_tick = None
    streams = files or (Path("-"),)
    for path in streams:
        try:
            handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8", errors="replace")
        except OSError as exc:
            _fail(f"{path}: cannot read ({exc.strerror or exc})")
        with handle:
            for raw in iter(functools.partial(handle.readline, MAX_LINE), ""):  # longer lines: pieces, as --follow
                raw = raw.rstrip("\n")
                if not raw:
                    continue
                try:
                    event = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    event = None
                stamp = event_time(event)
                if stamp is not None:
                    now[0] = max(now[0], stamp)
                if next_tick is not None and now[0] >= next_tick:
                    engine.tick(now[0])
                next_tick = (now[0] // 10 + 1) * 10
                engine.feed(event if isinstance(event, dict) else None, raw, log_group=log_group, timestamp=now[0])
    longest = max((a.alarm.period * (a.alarm.evaluation_periods + 2) for a in chosen if a.alarm), default=60)
    for step in range(0, longest + 60, 10):
        engine.tick(now[0] + step)
    if not as_json:
        click.echo(f"{len(out)} notification(s)", err=True)


def _default_state_file() -> Path:
    from corrtrace.alerts.settings import load_settings

    try:
        configured = load_settings().state_file
    except ConfigError as exc:
        _fail(str(exc))
    return Path(configured) if configured else user_data_dir("alerts-state.json")


def _follow(
    chosen: list[Alert],
    paths: list[str],
    actions: list[Any],
    log_group: str | None,
    duration: float | None,
    state_file: Path,
) -> None:
    import threading
    import time

    from corrtrace.alerts.engine import AlertEngine
    from corrtrace.alerts.tail import follow

    engine = AlertEngine(chosen, actions, state_file=state_file)
    stop = threading.Event()
    deadline = None if duration is None else time.monotonic() + duration
    last = [0.0]

    def on_line(raw: str) -> None:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            event = None
        engine.feed(event if isinstance(event, dict) else None, raw, log_group=log_group)

    def on_idle() -> None:
        now = time.time()
        if now - last[0] >= 1.0:
            last[0] = now
            engine.tick(now)
        if deadline is not None and time.monotonic() >= deadline:
            stop.set()

    try:
        follow(paths, on_line, stop, on_idle=on_idle)
    except KeyboardInterrupt:
        stop.set()


def _with_reporter(chosen: list[Alert], actions: dict[str, Any], reporter: Any) -> list[Any]:
    """Every alert reports to the CLI; alerts with a txmanager action also call the manager."""
    from corrtrace.alerts.actions import AlarmNotification

    tx = actions.get("txmanager")

    class _Dispatch:
        type = "cli"

        def __call__(self, n: AlarmNotification) -> None:
            reporter(n)
            alert = next((a for a in chosen if a.name == n.alert), None)
            if tx is not None and alert is not None and any(s.type == "txmanager" for s in alert.actions):
                tx(n)

    return [_Dispatch()]
