"""One configuration file (``corrtrace.yaml``) with a section per part, every key overridable from the
environment as ``CORRTRACE_<SECTION>_<KEY>``. Sections are dataclasses owned by the part that reads them.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
import reprlib
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import annotated_types
import yaml

from corrtrace.errors import InvalidInput

T = TypeVar("T")
CONFIG_ENV = "CORRTRACE_CONFIG"
LOCAL_CONFIG = "corrtrace.yaml"


class ConfigError(InvalidInput):
    """A configuration value is wrong; the message names the file, section, key and what was expected."""


def read_yaml(file: Path, kind: str, error: type[Exception]) -> Any:
    """Parse a YAML file; a missing or malformed file raises ``error`` naming the file and the ``kind`` of it."""
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{file}: no such {kind}") from None
    except IsADirectoryError:
        raise error(f"{file}: is a directory; expected a YAML {kind}") from None
    except UnicodeDecodeError:
        raise error(f"{file}: not a text file; expected a YAML {kind}") from None
    except OSError as exc:
        raise error(f"{file}: cannot read the {kind} ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise error(f"{file}: not valid YAML ({exc})") from None
    except RecursionError:
        raise error(f"{file}: not valid YAML (nested too deeply)") from None


def read_file(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the YAML file at ``path``, else ``$CORRTRACE_CONFIG``, else ``./corrtrace.yaml`` when the current
    directory has one (a project's own settings); none of them means no settings."""
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(CONFIG_ENV)
    if chosen is None and Path(LOCAL_CONFIG).is_file():
        chosen = LOCAL_CONFIG
    if not chosen:
        return {}
    file = Path(chosen)
    loaded = read_yaml(file, "configuration file", ConfigError)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: expected a mapping of sections at the top level")
    return loaded


# Top-level sections of corrtrace.yaml, one per part that reads one (add a new part's section here).
def user_data_dir(*parts: str) -> Path:
    """Where corrtrace keeps state for this user (``$XDG_DATA_HOME/corrtrace``, else ``~/.local/share/corrtrace``
    on Linux): the collector's store and checkpoints, the local alarm states. One place, so every command finds
    them whichever directory it runs from (collector/README.md, "Where the data lives")."""
    import platformdirs

    return Path(platformdirs.user_data_dir("corrtrace")).joinpath(*parts)


SECTIONS = ("alerts", "collector", "dashboards", "demo", "middleware", "txmanager")
# CORRTRACE_<SECTION>_<NAME> variables read outside the section's dataclass (not warned about as unknown).
ENV_ONLY = {"collector": {"dead_letter_path"}, "demo": {"mesh", "mdm_grace", "mdm_repair", "secret"}}

# Constraints a settings dataclass may put on a field (``flush_interval: Positive = 0.5``); the loader enforces
# them. Without one, every number is finite and not negative.
Positive = Annotated[float, annotated_types.Gt(0)]
PositiveInt = Annotated[int, annotated_types.Gt(0)]
Port = Annotated[int, annotated_types.Interval(ge=0, le=65535)]


class Check:
    """Field metadata running ``check(value)``, which returns what is wrong (or None); the loader reports it."""

    def __init__(self, check: Callable[[Any], str | None]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def run(value: Any) -> Any:
            problem = self.check(value)
            if problem:
                raise ValueError(problem)
            return value

        return core_schema.no_info_after_validator_function(run, handler(source))


def _directory_problem(value: str) -> str | None:
    path = Path(os.path.expanduser(value))
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else f"expected a directory, but {candidate} is a file"
    return None


Directory = Annotated[str, Check(_directory_problem)]  # a directory, or a path where one can be created


def url_problem(value: str) -> str | None:
    """What makes ``value`` no http(s) URL of a host (the clients would raise a traceback later), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        return "expected an http:// or https:// URL with a host"
    return None


def _region_problem(value: str) -> str | None:
    # botocore's own rule for a region name (an invalid one fails deep inside client creation)
    return None if re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?", value) else "not an AWS region name"


HttpUrl = Annotated[str, Check(url_problem)]  # http(s)://host[:port][/path]
Region = Annotated[str, Check(_region_problem)]  # us-east-1


def check_sections(raw: Mapping[str, Any], where: str) -> None:
    """Refuse an unknown top-level section, suggesting the known one it is probably a misspelling of."""
    for name in raw:
        if name not in SECTIONS:
            close = difflib.get_close_matches(str(name), SECTIONS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known sections: {', '.join(SECTIONS)}"
            raise ConfigError(f"{where}: unknown section {shown(name)}; {hint}")


def _is_number(hint: Any) -> bool:
    return hint in (int, float) or (
        typing.get_origin(hint) in (typing.Union, types.UnionType)
        and any(a in (int, float) for a in typing.get_args(hint))
    )


def _constrained(hint: Any) -> Any:
    """The field's type as validated: explicit ``Annotated`` constraints, else numbers finite and >= 0."""
    if typing.get_origin(hint) is Annotated or not _is_number(hint):
        return hint
    return Annotated[hint, annotated_types.Ge(0)]


@functools.lru_cache(maxsize=256)
def _adapter(hint: Any) -> Any:
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(_constrained(hint), config=ConfigDict(allow_inf_nan=False, coerce_numbers_to_str=True))


def _from_env(value: str, hint: Any, where: str) -> Any:
    """An environment string for a list or mapping field: JSON (``[..]``/``{..}``) or, for a list, a, b, c."""
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    origin = typing.get_origin(base) or base
    options = typing.get_args(base) if typing.get_origin(base) in (typing.Union, types.UnionType) else (base,)
    if not any((typing.get_origin(a) or a) in (list, dict) for a in options):
        return value
    if value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc}), got {shown(value)}") from None
    if origin is list:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4
_SHOWN.maxlevel = 2
SHOWN_LIMIT = 160  # characters of a shown value


def shown(value: Any) -> str:
    """A bounded ``repr`` of a configured value for an error line: a value of any size (a YAML alias bomb
    expands to millions of items, a pasted file) still makes one short line."""
    text = _SHOWN.repr(value)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 3] + "..."


# pydantic error types -> what the user should have written
EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "greater_than": "a number greater than {gt}",
    "greater_than_equal": "a number of at least {ge}",
    "less_than_equal": "a number of at most {le}",
    "less_than": "a number less than {lt}",
}


def _expected(error: Mapping[str, Any]) -> str:
    template = EXPECTED.get(error["type"])
    if template is not None:
        bounds = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in error.get("ctx", {}).items()}
        return "expected " + template.format(**bounds)
    message = str(error["msg"])
    return (message[0].lower() + message[1:]).replace("input should be", "expected").replace("value error, ", "")


def _not_text(value: Any) -> bool:
    """A string in ``value`` holds a lone surrogate: undecodable bytes of an environment variable, or a YAML
    ``"\\ud800"`` escape. No file, index name or JSON line can carry it, so it is refused with the rest of the
    configuration instead of failing wherever it is first encoded (for every line, in a sink)."""
    if isinstance(value, str):
        if value.isascii():
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_not_text(k) or _not_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_not_text(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_not_text(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _validate(value: Any, hint: Any, where: str, source: str = "") -> Any:
    from pydantic import ValidationError

    try:
        valid = _adapter(hint).validate_python(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        inner = "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}"
            for p in error["loc"]
            if not ((isinstance(p, str) and p[:1].isupper()) or p in ("list", "dict"))
        )
        raise ConfigError(f"{where}{inner}: {_expected(error)}, got {shown(value)}{source}") from None
    if _not_text(valid):
        raise ConfigError(f"{where}: expected UTF-8 text, got {shown(value)}{source}")
    return valid


def load_section(
    section: str,
    cls: type[T],
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build the dataclass ``cls`` from the file's ``section``, ``CORRTRACE_<SECTION>_<KEY>`` variables and then
    ``overrides`` (command-line options; ``None`` values are skipped).

    Every value is validated against the field's type (pydantic, lax: "7" is 7, "yes" is true) and its
    constraints, so a field added later is checked the same way; a bad value raises one ``ConfigError`` line
    naming the section, the key (or the variable) and what was expected.
    """
    env = os.environ if env is None else env
    raw = read_file(path, env) if data is None else dict(data)
    check_sections(raw, str(path or env.get(CONFIG_ENV) or "configuration"))
    values = raw.get(section) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a mapping of settings, got {shown(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls, include_extras=True)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(fields))}"
        raise ConfigError(f"{section}.{shown(str(unknown[0]))[1:-1]}: unknown key ({hint})")
    kwargs = {name: _validate(v, hints[name], f"{section}.{name}") for name, v in values.items()}
    prefix = f"CORRTRACE_{section.upper()}_"
    for variable, value in env.items():
        if not variable.startswith(prefix):
            continue
        name = variable[len(prefix) :].lower()
        if name in fields:
            where = f"{section}.{name}"
            kwargs[name] = _validate(_from_env(value, hints[name], where), hints[name], where, f" (from {variable})")
        elif name not in ENV_ONLY.get(section, ()):
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean {prefix}{close[0].upper()}?)" if close else ""
            print(
                f"corrtrace: warning: {variable} is not a setting of the {section} section; ignored{hint}",
                file=sys.stderr,
            )
    for name, value in (overrides or {}).items():
        if value is not None:
            kwargs[name] = _validate(value, hints[name], f"{section}.{name}", " (from the command line)")
    return cls(**kwargs)
