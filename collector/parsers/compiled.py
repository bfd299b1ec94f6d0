"""The text formats' parsers compiled with mypyc, used only while they match their source (collector/README.md,
"Compiled parsers").

``scripts/build-native`` (run by ``make``) compiles ``clock.py`` and ``text.py`` into extension modules beside
them, which Python imports in their place, and stamps the hash of every source they were built from (``STAMP``).
Imported first by ``parsers/__init__.py``: when any of those sources changed since (an edit, a checkout), the
``.py`` files are loaded instead, so a stale build can never run. ``CORRTRACE_PURE_PARSERS=1`` asks for the
``.py`` files whatever the stamp says.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
PACKAGE = __name__.rpartition(".")[0]
# compiled together (``text`` calls ``clock`` natively), in the order they import each other
MODULES = ("clock", "text")
# the shared library of the two (mypyc's group name + ``__mypyc``)
GROUP = f"{PACKAGE}.text_formats"
# every corrtrace module the compiled ones import: mypyc builds against their types and may inline their
# constants, so a change to any of them makes the build stale too (tests check this list against the imports)
IMPORTED = ("corrtrace.ids", "corrtrace.timestamps")
STAMP = HERE / "compiled.json"


def sources() -> dict[str, Path]:
    """Module name -> the source file a build depends on."""
    found = {f"{PACKAGE}.{name}": HERE / f"{name}.py" for name in MODULES}
    for name in IMPORTED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"{name}: not found (needed to check the compiled parsers)")
        found[name] = Path(spec.origin)
    return found


def digests() -> dict[str, str]:
    """The sha256 of each source now: what a fresh build's stamp holds."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in sources().items()}


def fresh() -> bool:
    """True when a build is stamped and none of its sources changed since (the extension modules may still be
    missing: then Python finds the ``.py`` files anyway)."""
    try:
        stamped = orjson.loads(STAMP.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return stamped == digests()


def write_stamp(path: Path = STAMP) -> None:
    """Record the sources as they are now: ``scripts/build-native`` writes this before it compiles and moves it
    to ``STAMP`` when the build succeeded, so a source edited during the build makes the build stale."""
    path.write_bytes(orjson.dumps(digests(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def missing_tool() -> str | None:
    """What this machine lacks to build the compiled modules (then the ``.py`` files run, and ``make`` goes on),
    or None: a C compiler (``$CC``, else ``cc``), mypyc (the dev extra's mypy), Python's C headers."""
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        return f"no C compiler ({compiler})"
    if importlib.util.find_spec("mypyc") is None:
        return "no mypyc (pip install mypy, or the dev extra)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return f"no Python.h in {sysconfig.get_paths()['include']} (the python3-dev package)"
    return None


def _load_source(name: str) -> None:
    full = f"{PACKAGE}.{name}"
    spec = importlib.util.spec_from_file_location(full, HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"{full}: no loader for {HERE / f'{name}.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    setattr(sys.modules[PACKAGE], name, module)  # ``parsers.text`` as a normal import would bind it


def _in_use() -> bool:
    """Leave the compiled modules to the normal import when fresh; else import the sources in their place."""
    if os.environ.get("CORRTRACE_PURE_PARSERS") != "1" and fresh():
        return True
    for name in MODULES:
        if f"{PACKAGE}.{name}" not in sys.modules:
            _load_source(name)
    return False


# whether the parsers that run are the compiled ones (benchmarks print it)
IN_USE = _in_use() and all(
    (spec := importlib.util.find_spec(f"{PACKAGE}.{name}")) is not None
    and spec.origin is not None
    and not spec.origin.endswith(".py")
    for name in MODULES
)
