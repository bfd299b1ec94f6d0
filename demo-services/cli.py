"""``corrtrace demo`` and ``corrtrace mdm`` (click commands, loaded lazily by corrtrace.cli)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import httpx
from corrtrace.demo.settings import DemoSettings, Mesh

from corrtrace.config import ConfigError, load_section
from corrtrace.endpoints import backend_url

MAX_ORDERS = 100_000


def _settings(config: str | None, overrides: dict[str, Any]) -> DemoSettings:
    try:
        settings = load_section("demo", DemoSettings, path=config)
        chosen = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(settings, **chosen)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    for name in ("decline_rate", "poison_rate", "slow_rate"):
        if not 0 <= getattr(settings, name) <= 1:
            raise click.BadParameter(f"{name} must be between 0 and 1", param_hint=f"--{name.replace('_', '-')}")
    for name in ("orders", "concurrency", "stream_batch_size", "stream_parallelization"):
        if getattr(settings, name) < 1:
            raise click.BadParameter("must be at least 1", param_hint=f"demo.{name}")
    if settings.orders > MAX_ORDERS:  # a demo, not a load test: the run and its report stay minutes long
        raise click.BadParameter(f"must be at most {MAX_ORDERS:,}", param_hint="demo.orders")
    if not 0 <= settings.manager_outage_seconds <= 60:
        raise click.BadParameter("must be between 0 and 60 seconds", param_hint="--manager-outage")
    if settings.slow_ms < 0 or settings.latency_threshold_ms < 1:
        raise click.BadParameter("slow_ms must be >= 0 and latency_threshold_ms >= 1", param_hint="--slow-ms")
    if settings.alarm_period_seconds not in (10, 20, 30) and settings.alarm_period_seconds % 60:
        raise click.BadParameter("must be 10, 20, 30 or a multiple of 60", param_hint="demo.alarm_period_seconds")
    return settings


def _es_ready(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/_cluster/health", timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def _start_es(url: str, err: Any) -> None:
    """``--with-elasticsearch``: use the node from the services script, starting it if needed."""
    if _es_ready(url):
        return
    script = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "scripts/elasticsearch/es.sh").exists()), None)
    if script is None:
        raise click.ClickException(
            f"Elasticsearch is not reachable at {url} and scripts/elasticsearch/es.sh is not here; "
            "start a node (scripts/services up es) or pass --elasticsearch URL"
        )
    err(f"starting Elasticsearch with {script / 'scripts/elasticsearch/es.sh'} (first start builds it; Java 17+)")
    subprocess.run(["bash", str(script / "scripts/elasticsearch/es.sh"), "start"], check=True)
    if not _es_ready(url):
        raise click.ClickException(f"Elasticsearch still not reachable at {url}")


class _EsNodeOption(click.Option):
    """``--with-elasticsearch``, whose help names the node URL as the environment gives it when help is shown."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = f"Use (and start) the services script's node at {backend_url('ES')} ($ES_URL, else $ES_PORT)."
        return super().get_help_record(ctx)


@click.command("demo")
@click.option("--orders", "-n", type=int, help="How many orders to send (default 60).")
@click.option("--seed", type=int, help="Seed of the failure injection (same seed, same failures).")
@click.option("--decline-rate", type=float, help="Share of orders whose card is declined (business failure).")
@click.option("--poison-rate", type=float, help="Share of poison orders that make shipping raise (code error).")
@click.option("--slow-rate", type=float, help="Share of orders whose payment is slow (latency alert).")
@click.option("--slow-ms", type=int, help="How slow a slow payment is, in milliseconds.")
@click.option("--concurrency", type=int, help="Orders in flight at once.")
@click.option(
    "--manager-outage",
    "manager_outage",
    type=float,
    metavar="SECONDS",
    help="Fault: stop the transaction manager this long once a third of the orders are done.",
)
@click.option("--workdir", type=click.Path(file_okay=False), help="Logs, DBs, mesh.json (default .corrtrace-demo).")
@click.option("--elasticsearch", "es_url", help="Ship logs to this Elasticsearch URL instead of the embedded store.")
@click.option("--with-elasticsearch", is_flag=True, cls=_EsNodeOption)
@click.option("--index-prefix", help="Elasticsearch index prefix (default logs-corrtrace).")
@click.option("--keep-running", is_flag=True, help="Leave the mesh up after the summary and print its URLs.")
@click.option(
    "--with-nginx",
    is_flag=True,
    default=None,
    help="Put a real nginx (Debian's, installed when missing) in front of ui; orders go through it.",
)
@click.option("--config", type=click.Path(dir_okay=False), help="YAML file with a demo section.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(
    orders: int | None,
    seed: int | None,
    decline_rate: float | None,
    poison_rate: float | None,
    slow_rate: float | None,
    slow_ms: int | None,
    concurrency: int | None,
    manager_outage: float | None,
    workdir: str | None,
    es_url: str | None,
    with_elasticsearch: bool,
    index_prefix: str | None,
    keep_running: bool,
    with_nginx: bool | None,
    config: str | None,
    as_json: bool,
) -> None:
    """Run the five-service demo mesh: orders with injected failures, rollbacks proven, MDM check."""
    from corrtrace.demo.processes import ChildFailed
    from corrtrace.demo.runner import Demo, DemoError
    from corrtrace.demo.summary import print_report
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if with_elasticsearch and not es_url:
        es_url = backend_url("ES")
    settings = _settings(
        config,
        {
            "orders": orders,
            "seed": seed,
            "decline_rate": decline_rate,
            "poison_rate": poison_rate,
            "slow_rate": slow_rate,
            "slow_ms": slow_ms,
            "concurrency": concurrency,
            "workdir": workdir,
            "elasticsearch_url": es_url,
            "index_prefix": index_prefix,
            "with_nginx": with_nginx,
            "manager_outage_seconds": manager_outage,
        },
    )
    console = Console(stderr=as_json)
    say = console.print
    if with_elasticsearch:
        _start_es(settings.elasticsearch_url, say)
    elif settings.elasticsearch_url and not _es_ready(settings.elasticsearch_url):
        raise click.ClickException(f"Elasticsearch is not reachable at {settings.elasticsearch_url}")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    runner = Demo(settings)
    code = 1
    try:
        with console.status("starting moto, the manager, the services, the alert engine and the collector..."):
            runner.start(on_step=lambda msg: None)
        # the URLs die with the demo: they are printed only with --keep-running (_keep_running)
        say(f"mesh up in {settings.workdir}: {len(runner.urls())} processes on 127.0.0.1")
        with Progress(
            TextColumn("sending orders"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("orders", total=settings.orders)
            report = runner.run(on_progress=lambda _o: progress.advance(task))
        store = (
            f"--backend elasticsearch --es-url {settings.elasticsearch_url} --index-prefix {settings.index_prefix}"
            if settings.elasticsearch_url
            else f"--data-dir {runner.mesh.collector_dir if runner.mesh else ''}"
        )
        hint = f"corrtrace search {report.flow_correlation_id} {store}"
        if as_json:
            click.echo(json.dumps(report.as_dict(), default=str))
        else:
            print_report(console, report, hint)
        code = 0 if report.passed else 1
        if keep_running:
            _keep_running(runner, console)
    except DemoError as exc:
        console.print(f"[red]corrtrace demo:[/red] {exc}", soft_wrap=True)  # one line, however narrow
        code = 2
    except ChildFailed as exc:
        console.print(f"[red]demo failed to run:[/red] {exc}")
        code = 1
    except KeyboardInterrupt:
        console.print("\ninterrupted: stopping every process the demo started")
        code = 130
    finally:  # whatever happened (even an unexpected error), stop every process the demo started
        runner.stop()
    sys.exit(code)


def _keep_running(runner: Any, console: Any) -> None:
    """Leave the mesh up; run the MDM check every minute as its scheduled handler would; Ctrl-C stops."""
    from corrtrace.demo.mdm import scheduled_handler
    from corrtrace.demo.settings import MESH_ENV

    assert runner.mesh is not None
    os.environ[MESH_ENV] = str(Path(runner.mesh.workdir) / "mesh.json")
    console.print("\nthe mesh keeps running (Ctrl-C stops every process):")
    for name, url in runner.urls().items():
        console.print(f"  {name:12} {url}")
    console.print(
        f"  try: curl -X POST {runner.mesh.url('ui')}/orders -H 'content-type: application/json' "
        '-d \'{"order_id":"o-1","sku":"sku-fig","qty":1,"amount_cents":900,'
        '"card":"4242424242424242","address":{"street":"1 Main St","city":"Berlin",'
        '"postcode":"10115"}}\''
    )
    console.print(f"  corrtrace mdm check --mesh {runner.mesh.workdir}")
    next_check = time.monotonic() + 60
    while True:
        runner.supervisor.check_alive()
        if time.monotonic() >= next_check:
            result = scheduled_handler({"id": None, "detail-type": "Scheduled Event"}, None)
            console.print(f"scheduled MDM check: {len(result['inconsistencies'])} inconsistencies")
            next_check = time.monotonic() + 60
        time.sleep(1)


@click.group("mdm")
def mdm() -> None:
    """Master data management: check that the demo services' own stores agree."""


@mdm.command("check")
@click.option(
    "--mesh",
    "mesh_path",
    type=click.Path(),
    help="The demo's work directory or mesh.json (default $CORRTRACE_DEMO_MESH or .corrtrace-demo).",
)
@click.option("--repair", is_flag=True, help="Ask the transaction manager to roll back each inconsistent request.")
@click.option(
    "--grace",
    type=float,
    default=0.0,
    show_default=True,
    help="Leave requests younger than this many seconds alone (still in flight).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(mesh_path: str | None, repair: bool, grace: float, as_json: bool) -> None:
    """Compare reservations, orders, payments and shipments; report each inconsistency with its correlation ID.

    Exit 0 when the stores agree (after --repair: when every inconsistency was repaired), 1 otherwise.
    """
    from corrtrace.demo.mdm import run_check

    try:
        mesh = Mesh.load(mesh_path)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        click.echo(f"corrtrace mdm check: {exc}", err=True)
        sys.exit(2)
    try:
        report = run_check(mesh, do_repair=repair, grace_seconds=grace)
    except Exception as exc:
        click.echo(
            f"corrtrace mdm check: cannot read the stores ({type(exc).__name__}: {exc}); "
            "is the mesh running (corrtrace demo --keep-running)?",
            err=True,
        )
        sys.exit(1)
    remaining = report.get("after_repair", report["inconsistencies"]) if repair else report["inconsistencies"]
    if as_json:
        click.echo(json.dumps(report, default=str))
    else:
        click.echo(f"{report['checked']} requests checked, {len(report['inconsistencies'])} inconsistencies")
        for item in report["inconsistencies"]:
            click.echo(f"  {item['correlation_id']}  {item['kind']}: {item['detail']}")
        for item in report.get("repairs", []):
            state = "rollback requested" if item["requested"] else "NOT repaired"
            click.echo(f"  repair {item['correlation_id']}: {state} ({item['detail']})")
        if repair:
            click.echo(f"after repair: {len(remaining)} inconsistencies")
    sys.exit(1 if remaining else 0)


__all__ = ["demo", "mdm"]
