"""``corrtrace dashboards build | validate | import``.

Exit codes: 0 ok, 1 a failed check (validation errors, Grafana refused), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from corrtrace.dashboards.settings import DashboardsSettings

from corrtrace.cli import http_url
from corrtrace.config import ConfigError, load_section


def _settings(config: str | None) -> DashboardsSettings:
    try:
        return load_section("dashboards", DashboardsSettings, path=config)
    except ConfigError as exc:
        click.echo(f"corrtrace dashboards: {exc}", err=True)
        sys.exit(2)


config_option = click.option("--config", type=click.Path(dir_okay=False), help="corrtrace.yaml (or $CORRTRACE_CONFIG).")


@click.group("dashboards")
def dashboards() -> None:
    """Build, validate and import the corrtrace Grafana dashboards."""


@dashboards.command("build")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@config_option
def build_command(out: str, as_json: bool, config: str | None) -> None:
    """Write one JSON file per dashboard plus Grafana provisioning files (provider, data sources)."""
    from corrtrace.dashboards.build import write_all
    from corrtrace.dashboards.validate import validate_dashboard

    settings = _settings(config)
    try:
        written = write_all(out, settings)
    except OSError as exc:
        click.echo(f"corrtrace dashboards: --out {out}: cannot write ({exc.strerror or exc})", err=True)
        sys.exit(2)
    errors = [
        p
        for path in written
        if path.suffix == ".json"
        for p in validate_dashboard(json.loads(path.read_text(encoding="utf-8")))
        if p.severity == "error"
    ]
    if as_json:
        click.echo(json.dumps({"written": [str(p) for p in written], "errors": [p.as_dict() for p in errors]}))
    else:
        boards = sum(1 for p in written if p.suffix == ".json")
        click.echo(f"wrote {boards} dashboards and {len(written) - boards} provisioning files under {out}:", err=True)
        for path in written:
            click.echo(str(path))
        if not errors:
            click.echo(_next_steps(out, settings, config), err=True)
    if errors:  # never ship a dashboard our own validator rejects
        for problem in errors:
            click.echo(problem.line(), err=True)
        sys.exit(1)


def _next_steps(out: str, settings: DashboardsSettings, config: str | None) -> str:
    """What to run next, and which backend the panels read (the user's own store may be another)."""
    lines = [
        f"next: corrtrace dashboards import --url {settings.grafana_url} --token $GRAFANA_TOKEN",
        f"  or provision: {out}/provisioning/* into Grafana's provisioning folder (e.g. /etc/grafana/provisioning) "
        f"and {out}/dashboards/*.json into {settings.dashboards_path}",
        f"the panels read Elasticsearch or OpenSearch at {settings.es_url} (indices {settings.index_pattern}) and "
        f"CloudWatch Logs ({settings.cw_region}, {', '.join(settings.cw_log_groups)})",
    ]
    if not _ships_to_a_search_engine(config):
        lines.append(
            "your collector ships to the embedded store, which Grafana cannot read: ship to Elasticsearch "
            f"too (collector.sinks: [embedded, elasticsearch], es_url: {settings.es_url}; or "
            "corrtrace collect --sink elasticsearch FILE...)"
        )
    return "\n".join(lines)


def _ships_to_a_search_engine(config: str | None) -> bool:
    from corrtrace.collector.settings import CollectorSettings

    try:
        sinks = load_section("collector", CollectorSettings, path=config).sinks
    except ConfigError:
        return False
    return bool({"elasticsearch", "opensearch"} & set(sinks))


@dashboards.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--schemas",
    "schemas_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder of Grafana JSON Schemas (default: the copy vendored in the package).",
)
@click.option("--datasource-uid", "uids", multiple=True, help="A data source uid that exists (repeatable).")
@click.option(
    "--datasources",
    "provisioned",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A Grafana datasource provisioning YAML whose uids exist (repeatable).",
)
@click.option("--strict", is_flag=True, help="Warnings fail too.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@config_option
def validate_command(
    files: tuple[str, ...],
    schemas_dir: str | None,
    uids: tuple[str, ...],
    provisioned: tuple[str, ...],
    strict: bool,
    as_json: bool,
    config: str | None,
) -> None:
    """Check dashboard JSON files: Grafana's schemas (dashboard, panel options, ES/CloudWatch queries) + lint."""
    from corrtrace.dashboards.provisioning import declared_uids
    from corrtrace.dashboards.validate import validate_file

    settings = _settings(config)
    known = {settings.es_datasource_uid, settings.cw_datasource_uid, *uids}
    for path in provisioned:
        try:
            known.update(declared_uids(path))
        except ValueError as exc:
            click.echo(f"corrtrace dashboards validate: {exc}", err=True)
            sys.exit(2)
    report: dict[str, list[dict[str, Any]]] = {}
    failed = False
    for name in files:
        problems = validate_file(name, schemas_dir=schemas_dir, datasource_uids=known)
        report[name] = [p.as_dict() for p in problems]
        failed = failed or any(p.severity == "error" or strict for p in problems)
        if not as_json:
            for problem in problems:
                click.echo(problem.line(name))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        total = sum(len(v) for v in report.values())
        click.echo(f"{len(files)} file(s), {total} problem(s)", err=True)
    sys.exit(1 if failed else 0)


@dashboards.command("import")
@click.option("--url", required=True, envvar="GRAFANA_URL", callback=http_url, help="Grafana base URL ($GRAFANA_URL).")
@click.option("--token", required=True, envvar="GRAFANA_TOKEN", help="Service-account token ($GRAFANA_TOKEN).")
@click.option("--folder", default=None, help="Folder title, created if missing (default: the config's folder).")
@click.option("--overwrite", is_flag=True, help="Replace dashboards with the same uid.")
@click.option("--message", default="corrtrace dashboards import", show_default=True, help="Version note.")
@click.option("--org-id", type=int, default=None, help="X-Grafana-Org-Id.")
@click.option("--retries", type=click.IntRange(0, 10), default=4, show_default=True, help="Retries on 5xx.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@config_option
def import_command(
    url: str,
    token: str,
    folder: str | None,
    overwrite: bool,
    message: str,
    org_id: int | None,
    retries: int,
    as_json: bool,
    files: tuple[str, ...],
    config: str | None,
) -> None:
    """Upload the corrtrace dashboards (or FILES) through POST /api/dashboards/db."""
    from corrtrace.dashboards.build import build_all
    from corrtrace.dashboards.grafana_api import GrafanaClient, GrafanaError
    from corrtrace.dashboards.validate import read_json, unwrap

    settings = _settings(config)
    if not token.strip():
        click.echo("corrtrace dashboards import: empty --token: pass a service-account token (glsa_...)", err=True)
        sys.exit(2)
    try:
        boards = [unwrap(read_json(f)) for f in files] or build_all(settings)
    except (OSError, ValueError) as exc:
        click.echo(f"corrtrace dashboards import: cannot read a dashboard file: {str(exc)[:200]}", err=True)
        sys.exit(2)
    bad = [f for f, b in zip(files, boards, strict=False) if not isinstance(b, dict) or not b.get("uid")]
    if bad:
        click.echo(
            f'corrtrace dashboards import: {bad[0]}: a dashboard needs a "uid" (it decides create or update)', err=True
        )
        sys.exit(2)
    title = settings.folder if folder is None else folder
    results: list[dict[str, Any]] = []
    try:
        with GrafanaClient(url, token, org_id=org_id, retries=retries) as client:
            folder_uid = None
            if title:
                folder_uid = client.ensure_folder(title, settings.folder_uid if folder is None else None)
            for board in boards:
                result = client.import_dashboard(board, folder_uid=folder_uid, overwrite=overwrite, message=message)
                results.append({"uid": result.uid, "url": result.url, "version": result.version})
                if not as_json:
                    click.echo(f"imported {result.uid} (version {result.version}): {result.url}")
    except GrafanaError as exc:
        if as_json:
            click.echo(json.dumps({"imported": results, "error": str(exc)}))
        click.echo(f"corrtrace dashboards import: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({"imported": results}))
