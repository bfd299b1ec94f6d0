"""One configuration file (``corrtrace.yaml``) with a section per part, every key overridable from the
environment as ``CORRTRACE_<SECTION>_<KEY>``. Sections are dataclasses owned by the part that reads them.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
CONFIG_ENV = "CORRTRACE_CONFIG"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, section, key and what was expected."""


def read_yaml(file: Path, kind: str, error: type[Exception]) -> Any:
    """Parse a YAML file; a missing or malformed file raises ``error`` naming the file and the ``kind`` of it."""
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{file}: no such {kind}") from None
    except yaml.YAMLError as exc:
        raise error(f"{file}: not valid YAML ({exc})") from None


def read_file(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the YAML file at ``path`` (or ``$CORRTRACE_CONFIG``); no file configured means no settings."""
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(CONFIG_ENV)
    if not chosen:
        return {}
    file = Path(chosen)
    loaded = read_yaml(file, "configuration file", ConfigError)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: expected a mapping of sections at the top level")
    return loaded


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where) if len(inner) == 1 else value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint in (int, float):
        try:
            return hint(value)
        except (TypeError, ValueError):
            kind = "an integer" if hint is int else "a number"
            raise ConfigError(f"{where}: expected {kind}, got {value!r}") from None
    if hint is str:
        if isinstance(value, str | int | float):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    return value


def load_section(
    section: str,
    cls: type[T],
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> T:
    """Build the dataclass ``cls`` from the file's ``section`` and ``CORRTRACE_<SECTION>_<KEY>`` overrides."""
    env = os.environ if env is None else env
    raw = read_file(path, env) if data is None else dict(data)
    values = raw.get(section) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a mapping of settings, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    merged = dict(values)
    prefix = f"CORRTRACE_{section.upper()}_"
    for name in fields:
        if prefix + name.upper() in env:
            merged[name] = env[prefix + name.upper()]
    kwargs = {name: _coerce(v, hints[name], f"{section}.{name}") for name, v in merged.items()}
    return cls(**kwargs)
