"""The ``corrtrace`` command. Each package contributes its commands; they load only when used."""

from __future__ import annotations

import importlib
import sys

import click

from corrtrace import __version__

# command name -> "module:attribute" of a click command; imported on first use so `--help` stays fast.
LAZY_COMMANDS: dict[str, str] = {
    "demo": "corrtrace.demo.cli:demo",
    "collect": "corrtrace.collector.cli:collect",
    "search": "corrtrace.collector.cli:search",
    "parse-test": "corrtrace.collector.cli:parse_test",
    "prune": "corrtrace.collector.cli:prune",
    "alerts": "corrtrace.alerts.cli:alerts",
    "txmanager": "corrtrace.txmanager.cli:txmanager",
    "mdm": "corrtrace.demo.cli:mdm",
    "dashboards": "corrtrace.dashboards.cli:dashboards",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported from ``LAZY_COMMANDS`` when first asked for."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse an argument that is not UTF-8 (bytes a shell passed through, decoded by Python as lone
        surrogates) here, for every command: deeper down it would fail wherever it is first encoded."""
        for position, arg in enumerate(args, 1):
            try:
                arg.encode()
            except UnicodeEncodeError:
                from corrtrace.config import shown

                raise click.UsageError(
                    f"argument {position} ({shown(arg.encode(errors='surrogateescape'))}) is not valid UTF-8"
                ) from None
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attr = LAZY_COMMANDS[cmd_name].split(":")
        try:
            command = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            return _unavailable(cmd_name, exc)
        if not isinstance(command, click.Command):
            return _unavailable(cmd_name, TypeError(f"{module_name}:{attr} is not a click command"))
        return command


def _unavailable(name: str, exc: Exception) -> click.Command:
    """A stand-in that explains why a command cannot load (usually a missing optional extra)."""

    @click.command(name, help=f"(unavailable: {exc})", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stand_in(args: tuple[str, ...]) -> None:
        click.echo(
            f"corrtrace {name}: cannot load ({exc}). Install the extras: pip install 'corrtrace[all]'",
            err=True,
        )
        sys.exit(2)

    return stand_in


def http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for a ``--url`` option: a usage error now, not retries against ``ftp://x`` and a traceback."""
    from corrtrace.config import shown, url_problem

    problem = value and url_problem(value)
    if problem:
        raise click.BadParameter(f"{problem}, got {shown(value)}")
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="corrtrace")
def main() -> None:
    """Trace one request across services by correlation ID, and roll back what a failed request did."""


@main.command("log-config")
@click.option("--service", required=True, help="service.name on every line.")
@click.option(
    "--level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Level of the root and server loggers.",
)
@click.option("--version", "service_version", help="service.version on every line.")
@click.option("--environment", help="service.environment on every line.")
def log_config(service: str, level: str, service_version: str | None, environment: str | None) -> None:
    """Print a logging config (JSON) that makes uvicorn's and gunicorn's lines corrtrace JSON lines.

    uvicorn app:app --log-config log.json   (after: corrtrace log-config --service NAME > log.json)
    """
    import json

    from corrtrace.logging import server_log_config

    config = server_log_config(service, version=service_version, environment=environment, level=level.upper())
    click.echo(json.dumps(config, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
