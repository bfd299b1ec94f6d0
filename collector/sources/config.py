"""``collector.sources`` (and ``paths``, ``stdin``) -> the sources the pipeline reads, each with its format.

One place turns the declared ``format``/``service``/``multiline`` of each path into a ``LineFormat`` and a
``Multiline`` wrapper, so a bad format or rule is reported at start-up, once, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corrtrace.collector.checkpoint import Checkpoint
from corrtrace.collector.parsers import FormatError, LineFormat, build_format
from corrtrace.collector.sources.multiline import Multiline, Rule, build_rules

from corrtrace.config import ConfigError

SOURCE_KEYS = ("path", "format", "service", "time_format", "multiline")


@dataclass
class SourceSpec:
    """Declared paths (globs) read the same way."""

    patterns: list[str]
    fmt: LineFormat
    rules: list[Rule]


def _spec(where: str, patterns: list[str], item: dict[str, Any], settings: Any, fmt_override: str | None) -> SourceSpec:
    unknown = sorted(set(item) - set(SOURCE_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(SOURCE_KEYS)})")
    try:
        fmt = build_format(
            fmt_override or item.get("format") or settings.format,
            service=item.get("service"),
            time_format=item.get("time_format"),
            id_aliases=settings.id_aliases,
            service_aliases=settings.service_aliases,
        )
    except FormatError as exc:
        raise ConfigError(f"{where}.format: {exc}") from None
    try:
        rules = build_rules(item.get("multiline", settings.multiline))
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    return SourceSpec(patterns, fmt, rules)


def source_specs(
    settings: Any, files: tuple[str, ...] | list[str] = (), fmt_override: str | None = None
) -> list[SourceSpec]:
    """FILE arguments (if any) else ``paths`` and ``sources``; raises ``ConfigError`` with a one-line reason."""
    if files:
        return [_spec("--format", list(files), {}, settings, fmt_override)]
    specs = [_spec("collector.format", list(settings.paths), {}, settings, fmt_override)] if settings.paths else []
    for i, item in enumerate(settings.sources):
        where = f"collector.sources[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise ConfigError(f"{where}: expected a mapping with a path (and format, service, multiline)")
        specs.append(_spec(where, [item["path"]], item, settings, fmt_override))
    return specs


def stdin_spec(settings: Any, fmt_override: str | None = None) -> SourceSpec:
    return _spec("collector.format", [], {}, settings, fmt_override)


def build_sources(
    settings: Any,
    checkpoint: Checkpoint,
    *,
    files: tuple[str, ...] | list[str] = (),
    use_stdin: bool = False,
    fmt_override: str | None = None,
) -> list[Any]:
    """One ``FileTail`` per declared path (wrapped by ``Multiline`` when it has rules), then stdin if asked."""
    from corrtrace.collector.sources.stdin import StreamSource
    from corrtrace.collector.sources.tail import FileTail

    sources: list[Any] = []
    for spec in source_specs(settings, files, fmt_override):
        tail = FileTail(spec.patterns, checkpoint, start_at_end=settings.start_at_end)
        sources.append(wrap(tail, spec, settings))
    if use_stdin:
        sources.append(wrap(StreamSource(), stdin_spec(settings, fmt_override), settings))
    return sources


def wrap(source: Any, spec: SourceSpec, settings: Any) -> Any:
    """``source`` with its format attached, behind a ``Multiline`` joiner when the spec has rules."""
    if not spec.rules:
        source.fmt = spec.fmt
        return source
    return Multiline(
        source,
        spec.rules,
        max_lines=settings.multiline_max_lines,
        max_bytes=settings.multiline_max_bytes,
        flush_timeout=settings.multiline_flush_timeout,
        fmt=spec.fmt,
    )
