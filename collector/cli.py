"""``corrtrace collect`` (ship logs) and ``corrtrace search`` (one request's lines as a timeline)."""

from __future__ import annotations

import gc
import glob
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import click
import orjson

from corrtrace.config import ConfigError, load_section

log = logging.getLogger("corrtrace.collector")
# The collector allocates a dict per line and frees it at once; a larger young generation keeps the cyclic GC
# from rescanning the buffered batches thousands of times a second (about +25% throughput, memory unchanged).
COLLECT_GC_THRESHOLD = (50_000, 20, 20)


def _tune_malloc() -> None:
    """``collector.malloc_tuning``: serve the multi-megabyte bulk bodies from mmap (a fixed threshold, so glibc
    does not raise it) and cap the per-thread arenas: freed buffers go back to the OS and peak RSS stays near the
    working set. A process-wide setting, so only the ``collect`` command makes it, and only when configured."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 512 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _settings(config: str | None, overrides: dict[str, Any]) -> Any:
    from corrtrace.collector.settings import CollectorSettings

    try:
        chosen = {key: value for key, value in overrides.items() if value not in (None, (), [])}
        return load_section("collector", CollectorSettings, path=config, overrides=chosen).validate()
    except ConfigError as exc:
        click.echo(f"corrtrace: {exc}", err=True)
        sys.exit(2)


@click.command("collect")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML file with a collector section.")
@click.option("--once", is_flag=True, help="Ship the given FILEs (or the configured paths) to the end, then exit.")
@click.option("--stdin", "use_stdin", is_flag=True, help="Also read JSON lines from standard input.")
@click.option(
    "--sink",
    "sinks",
    multiple=True,
    type=click.Choice(["embedded", "elasticsearch", "opensearch", "cloudwatch"]),
    help="Override the sinks.",
)
@click.option("--data-dir", help="Checkpoint, buffer, dead letters and embedded store directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the final statistics as JSON.")
@click.option(
    "--format",
    "line_format",
    help="Format of non-JSON lines: auto (default), json, talk, logfmt, "
    "logback, nginx, or a regular expression with named groups.",
)
@click.argument("files", nargs=-1)
def collect(
    config: str | None,
    once: bool,
    use_stdin: bool,
    sinks: tuple[str, ...],
    data_dir: str | None,
    as_json: bool,
    line_format: str | None,
    files: tuple[str, ...],
) -> None:
    """Ship JSON log lines (tailed files, stdin) to Elasticsearch, CloudWatch Logs or the embedded store."""
    from corrtrace.collector.checkpoint import StateError, claim
    from corrtrace.collector.pipeline import Pipeline
    from corrtrace.collector.sources.config import build_sources, source_specs

    settings = _settings(config, {"sinks": list(sinks), "data_dir": data_dir})
    gc.set_threshold(*COLLECT_GC_THRESHOLD)
    if settings.malloc_tuning:
        _tune_malloc()
    try:
        paths = [p for spec in source_specs(settings, files, line_format) for p in spec.patterns]
    except ConfigError as exc:
        click.echo(f"corrtrace collect: {exc}", err=True)
        sys.exit(2)
    if not paths and not (use_stdin or settings.stdin):
        click.echo(
            "corrtrace collect: nothing to read; give FILE arguments, collector.paths, collector.sources or --stdin",
            err=True,
        )
        sys.exit(2)
    matched = {p: glob.glob(p) for p in paths}
    unmatched = [p for p, found in matched.items() if not any(os.path.isfile(f) for f in found)]
    for pattern in unmatched:
        special = matched[pattern] and not any(os.path.isdir(f) for f in matched[pattern])
        click.echo(
            f"corrtrace collect: {'error' if once else 'warning'}: {pattern!r} matches no file"
            + (" (only a pipe, socket or device: pipe it in with --stdin)" if special else "")
            + ("" if once else " (yet; watching for it)"),
            err=True,
        )
    if once and unmatched:
        sys.exit(2)
    if not logging.getLogger().handlers:
        from corrtrace.logging import configure

        configure("corrtrace-collector", stream=sys.stderr, level="INFO")
    once = once or bool(use_stdin and not paths)
    try:
        lock, holder = claim(settings.make_data_dir())
        if holder is not None:
            click.echo(
                f"corrtrace collect: another collector (pid {holder}) uses data_dir {settings.dir}: one collector "
                "per data_dir (they would share its checkpoint and ship every line twice); this one stops",
                err=True,
            )
            sys.exit(2)
        if lock is not None:
            click.get_current_context().call_on_close(lambda: os.close(lock))  # in-process runs (tests) let it go
        built = settings.build_sinks(fail_on_refusal=once)
        pipeline = Pipeline(
            [],
            built,
            data_dir=settings.dir,
            once=once,
            batch_max_events=settings.batch_max_events,
            batch_max_bytes=settings.batch_max_bytes,
            flush_interval=settings.flush_interval,
            memory_batches=settings.memory_batches,
            buffer_max_bytes=settings.buffer_max_bytes,
            workers=settings.workers,
        )
    except (StateError, ConfigError) as exc:
        click.echo(f"corrtrace collect: {exc}", err=True)
        sys.exit(2)
    pipeline.sources += build_sources(
        settings, pipeline.checkpoint, files=files, use_stdin=use_stdin or settings.stdin, fmt_override=line_format
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # What start-up made (modules, the settings' validators: most of the objects the process will ever hold) is
    # never garbage: out of every later collection, the one at exit included (about 0.1 s of CPU per run).
    gc.freeze()
    pipeline.start()
    pruner = None
    if not pipeline.once:
        from corrtrace.collector.retention import DailyPruner

        pruner = DailyPruner(built, settings.retention_for).start()
    live = sys.stderr.isatty()
    last_stats = time.monotonic()
    failure = None
    try:
        while not stopping.is_set():
            if pipeline.wait(0.5):
                break
            if live:
                sys.stderr.write(
                    f"\rcorrtrace collect: {pipeline.stats.shipped:,} shipped, "
                    f"{pipeline.stats.rate():,.0f} events/s, {len(pipeline.queue)} batches queued "
                )
                sys.stderr.flush()
            if time.monotonic() - last_stats >= settings.stats_interval:
                last_stats = time.monotonic()
                log.info("collector stats", extra=_stats_fields(pipeline, built))
    except RuntimeError as exc:
        failure = exc
    finally:
        if pruner is not None:
            pruner.close()
        pipeline.stop(drain_timeout=10.0)
        for sink in built:
            if once and pipeline.error is None:
                sink.make_searchable()  # `collect --once FILE && corrtrace search ID` finds every stored line
            sink.close()
    if live:
        sys.stderr.write("\n")
    fields = _stats_fields(pipeline, built)
    misconfigured = isinstance(pipeline.error, ConfigError)  # a setting the engine refuses: its line, exit 2
    if failure is not None:
        click.echo(f"corrtrace collect: {pipeline.error if misconfigured else failure}", err=True)
    if not once:
        log.info("collector stopped", extra=fields)
    if as_json:
        click.echo(orjson.dumps(fields["labels"]).decode())
    else:
        click.echo(_summary(pipeline), err=True)
    if misconfigured:
        sys.exit(2)  # a setting the engine refuses (said above); nothing was stored or checkpointed past it
    unshipped = pipeline.error is not None or (once and pipeline.stats.shipped < pipeline.stats.read)
    sys.exit(1 if unshipped else 0)


def _summary(pipeline: Any) -> str:
    """One line a person reads: what was stored, what was dead-lettered and where, what is left."""
    st = pipeline.stats
    text = f"corrtrace collect: {_n(st.read, 'line')} read, {st.stored:,} stored, {st.dead_lettered:,} dead-lettered"
    if st.dead_lettered:
        text += f" (reasons in {pipeline.dead_letters.path})"
    if st.read > st.shipped:
        text += f", {st.read - st.shipped:,} not shipped yet (read again from the checkpoint on the next run)"
    return text


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _stats_fields(pipeline: Any, sinks: list[Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {
        "read": pipeline.stats.read,
        "shipped": pipeline.stats.shipped,
        "stored": pipeline.stats.stored,
        "dead_lettered": pipeline.stats.dead_lettered,
        "dead_letter_path": str(pipeline.dead_letters.path),
        "queued_batches": len(pipeline.queue),
        "events_per_second": round(pipeline.stats.rate()),
    }
    for sink in sinks:
        st = sink.stats
        labels[sink.name] = {
            "delivered": st.delivered,
            "duplicates": st.duplicates,
            "retried": st.retried,
            "dead_lettered": st.dead_lettered,
            "requests": st.requests,
            "failures": st.failures,
        }
    return {"event.dataset": "corrtrace.collector", "labels": labels}


@click.command("parse-test")
@click.option(
    "--format",
    "line_format",
    default="auto",
    show_default=True,
    help="auto, json, talk, logfmt, logback, nginx, or a regular expression with named groups.",
)
@click.option("--service", help="The service of lines that name none.")
@click.option("--time-format", help="strptime format of a user regex's timestamp group.")
@click.argument("lines", nargs=-1, required=True)
def parse_test(line_format: str, service: str | None, time_format: str | None, lines: tuple[str, ...]) -> None:
    """Print the event each LINE becomes (``\\n`` in a LINE joins lines into one multiline record, ``\\t`` is a
    tab)."""
    from corrtrace.collector.parsers import FormatError, JoinedLines, build_format
    from corrtrace.collector.record import make_record

    try:
        fmt = build_format(line_format, service=service, time_format=time_format)
    except FormatError as exc:
        click.echo(f"corrtrace parse-test: --format: {exc}", err=True)
        sys.exit(2)
    for i, text in enumerate(lines):
        data = text.replace("\\n", "\n").replace("\\t", "\t").encode()
        _, event = make_record("parse-test", i, i + 1, JoinedLines(data) if b"\n" in data else data, fmt=fmt)
        click.echo(orjson.dumps(event).decode())


@click.command("prune")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML file with a collector section.")
@click.option(
    "--sink",
    "sinks",
    multiple=True,
    type=click.Choice(["embedded", "elasticsearch", "opensearch"]),
    help="Prune these sinks (default: the configured ones).",
)
@click.option("--data-dir", help="The collector's data dir (embedded store).")
@click.option("--days", type=click.IntRange(min=1), help="Keep this many days instead of the configured retention.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
def prune(config: str | None, sinks: tuple[str, ...], data_dir: str | None, days: int | None, dry_run: bool) -> None:
    """Delete what is older than the retention: this prefix's daily indices, old embedded-store events."""
    from corrtrace.collector.settings import MAX_RETENTION_DAYS

    if days is not None and days > MAX_RETENTION_DAYS:
        click.echo(f"corrtrace prune: --days: expected at most {MAX_RETENTION_DAYS}", err=True)
        sys.exit(2)
    settings = _settings(config, {"sinks": list(sinks), "data_dir": data_dir})
    status = 0
    try:
        built = settings.build_sinks()
    except ConfigError as exc:
        click.echo(f"corrtrace prune: {exc}", err=True)
        sys.exit(2)
    for sink in built:
        if not hasattr(sink, "prune"):
            continue  # CloudWatch Logs expires events itself (the log group's retention policy)
        keep = days or settings.retention_for(sink.name)
        try:
            removed = sink.prune(keep, dry_run=dry_run)
        except Exception as exc:
            click.echo(f"corrtrace prune: {sink.name}: {exc}", err=True)
            status = 1
            continue
        finally:
            sink.close()
        verb = "would remove" if dry_run else "removed"
        for what in removed:
            click.echo(f"{sink.name}: {verb} {what}")
        if not removed:
            click.echo(f"{sink.name}: nothing older than {keep} days" if keep else f"{sink.name}: kept forever")
    sys.exit(status)


@click.command("search")
@click.argument("correlation_id")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML file with a collector section.")
@click.option(
    "--backend",
    type=click.Choice(["embedded", "elasticsearch", "opensearch", "cloudwatch"]),
    help="Where to search (default: the node --es-url names, CloudWatch with --log-group, else the first "
    "configured sink, else embedded).",
)
@click.option("--data-dir", help="Embedded store directory (the collector's data dir).")
@click.option("--es-url", help="Elasticsearch URL, or a cluster's node URLs separated by commas.")
@click.option("--index-prefix", help="Index prefix (default logs-corrtrace).")
@click.option("--log-group", "log_groups", multiple=True, help="CloudWatch log group(s) to search.")
@click.option("--since", help="Start: RFC 3339, epoch ms, or relative like 15m / 2h / 3d.")
@click.option("--until", help="End: RFC 3339, epoch ms, or relative.")
@click.option("--service", help="Only this service's lines.")
@click.option("--level", help="Only this log level.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the stored events.")
def search(
    correlation_id: str,
    config: str | None,
    backend: str | None,
    data_dir: str | None,
    es_url: str | None,
    index_prefix: str | None,
    log_groups: tuple[str, ...],
    since: str | None,
    until: str | None,
    service: str | None,
    level: str | None,
    as_json: bool,
) -> None:
    """Show one request's lines from every service, as a timeline (or --json)."""
    from corrtrace.collector.search import search_events
    from corrtrace.collector.sinks.base import search_id_problem

    from corrtrace.ids import safe_excerpt

    problem = search_id_problem(correlation_id)
    if problem:
        click.echo(f"corrtrace search: {problem}, got {safe_excerpt(correlation_id)}", err=True)
        sys.exit(2)
    settings = _settings(
        config,
        {
            "data_dir": data_dir,
            "es_url": es_url and es_url.split(","),
            "index_prefix": index_prefix,
            "cloudwatch_search_groups": list(log_groups),
        },
    )
    from corrtrace.collector.search import parse_time
    from corrtrace.collector.sinks.embedded import store_file

    # an option only one kind of backend reads names it: `search ID --es-url URL` means that node (OpenSearch
    # when the configured sink says so), `--log-group` CloudWatch
    configured = settings.sinks[0] if settings.sinks else "embedded"
    if es_url:
        implied: str | None = configured if configured in ("elasticsearch", "opensearch") else "elasticsearch"
    else:
        implied = "cloudwatch" if log_groups else None
    chosen = backend or implied or configured
    settings.sinks = [chosen]
    store = _store_name(chosen, settings)
    try:
        parse_time(since), parse_time(until)
    except ValueError as exc:
        click.echo(f"corrtrace search: {exc}", err=True)
        sys.exit(2)
    if chosen == "embedded" and not store_file(settings.dir / "store").exists():  # never create an empty one
        click.echo(
            f"corrtrace search: no lines for correlation id {correlation_id}: there is no {store} (nothing "
            "was collected there; ship with `corrtrace collect --once FILE`, or give --data-dir / "
            "--backend for the store you collected into)",
            err=True,
        )
        sys.exit(1)
    try:
        target = settings.build_sinks()[0]
        events = search_events(correlation_id, backend=target, since=since, until=until, service=service, level=level)
        empty = not events and chosen == "embedded" and target.count() == 0
    except ValueError as exc:
        click.echo(f"corrtrace search: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        click.echo(f"corrtrace search: {chosen} search failed: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(orjson.dumps(events).decode())
    if not events:  # like grep: nothing found is exit 1
        hint = " (the store is empty; ship with `corrtrace collect --once FILE`)" if empty else ""
        click.echo(f"corrtrace search: no lines for correlation id {correlation_id} in the {store}{hint}", err=True)
        sys.exit(1)
    if not as_json:
        _print_timeline(correlation_id, events, store)
    if not events.complete:
        click.echo(
            f"corrtrace search: showing the first {len(events):,} lines of {correlation_id}; more lines match: "
            "narrow the search with --since, --until, --service or --level",
            err=True,
        )


def _store_name(backend: str, settings: Any) -> str:
    """Which store a search reads, as the user would name it."""
    from corrtrace.collector.sinks.embedded import store_file

    if backend == "embedded":
        return f"embedded store {store_file(settings.dir / 'store')}"
    if backend in ("elasticsearch", "opensearch"):
        return f"{backend} {settings.es_url} (indices {settings.index_prefix}-*)"
    groups = ", ".join(settings.cloudwatch_search_groups) or settings.cloudwatch_log_group
    return f"cloudwatch log groups {groups}"


def _print_timeline(correlation_id: str, events: list[dict[str, Any]], store: str) -> None:
    from corrtrace.collector.search import timeline_rows, timeline_table
    from rich.console import Console
    from rich.text import Text

    console = Console()
    services, rows = timeline_rows(events)
    console.print(
        Text.assemble(
            (correlation_id, "bold"),
            f": {_n(len(rows), 'line')}, services: {' -> '.join(services)}  (from the {store})",
        ),
        soft_wrap=True,
    )  # paths whole
    console.print(timeline_table(rows))
