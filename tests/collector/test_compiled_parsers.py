"""The text parsers compiled with mypyc (collector/README.md, "Compiled parsers"): ``make`` builds and uses them,
they read every line as their source does, and a source changed after the build runs as Python."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import corrtrace.collector.parsers as parsers
import pytest
from corrtrace.collector.parsers import clock, compiled, text
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collector.test_batch_records import TALK_AND_LOGBACK, _mixed, logfmt_lines, nginx_lines
from tests.core.test_self_contained import install_layout

ROOT = Path(__file__).resolve().parents[2]
PARSERS = ROOT / "collector" / "parsers"
EXTENSION = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def test_make_built_the_parsers_and_they_are_the_ones_in_use() -> None:
    assert compiled.missing_tool() is None, f"this machine cannot build them: {compiled.missing_tool()}"
    assert compiled.fresh(), "the stamp does not match the sources: run `make native`"
    assert compiled.IN_USE
    assert text.__file__ is not None and text.__file__.endswith(EXTENSION)
    assert clock.__file__ is not None and clock.__file__.endswith(EXTENSION)


def test_what_a_machine_lacks_to_build_them_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC", "no-such-cc -O2")
    assert compiled.missing_tool() == "no C compiler (no-such-cc -O2)"
    monkeypatch.delenv("CC")
    monkeypatch.setattr(compiled.sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    assert compiled.missing_tool() == f"no Python.h in {tmp_path} (the python3-dev package)"


def _imported_corrtrace_modules(path: Path) -> set[str]:
    """The corrtrace modules ``path`` imports (``from package import module`` names the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("corrtrace"):
            spec = importlib.util.find_spec(node.module)
            package = spec is not None and spec.submodule_search_locations is not None
            found |= {f"{node.module}.{alias.name}" for alias in node.names} if package else {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("corrtrace")}
    return found


def test_the_stamp_covers_every_corrtrace_module_the_compiled_ones_import() -> None:
    own = {f"{compiled.PACKAGE}.{name}" for name in compiled.MODULES}
    sources = compiled.sources()
    seen, todo = set(), [PARSERS / f"{name}.py" for name in compiled.MODULES]
    while todo:  # every module they import, and what those import, is stamped
        imported = _imported_corrtrace_modules(todo.pop()) - own - seen
        seen |= imported
        todo += [sources[name] for name in imported if name in sources]
    assert seen == set(compiled.IMPORTED)


def _load_sources() -> tuple[ModuleType, ModuleType]:
    """clock.py and text.py as Python modules beside the compiled ones (text.py bound to the source clock)."""
    loaded = []
    saved_module, saved_attr = sys.modules[clock.__name__], parsers.clock
    try:
        for name in compiled.MODULES:
            spec = importlib.util.spec_from_file_location(f"source_{name}", PARSERS / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded.append(module)
            if name == "clock":  # text.py's ``from corrtrace.collector.parsers import clock``
                sys.modules[clock.__name__] = parsers.clock = module
    finally:
        sys.modules[clock.__name__], parsers.clock = saved_module, saved_attr
    source_clock, source_text = loaded
    return source_clock, source_text


SOURCE_CLOCK, SOURCE_TEXT = _load_sources()


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception as exc:  # the same error from both, or the test says which line differs
        return type(exc).__name__


def _lines() -> st.SearchStrategy[bytes]:
    return (
        nginx_lines()
        | logfmt_lines()
        | st.sampled_from([*(line.encode() for line in TALK_AND_LOGBACK), *_mixed()])
        | st.binary(max_size=60)
        | st.text(alphabet='aZ09 -:.,/[]="\\\t\u0665\xe9', max_size=80).map(str.encode)
    )


@settings(max_examples=400, deadline=None)
@given(line=_lines(), service=st.sampled_from([None, ("billing", '"billing"')]))
def test_the_compiled_parsers_read_every_line_as_their_source(line: bytes, service: Any) -> None:
    decoded = line.decode("utf-8", "replace")
    for name, parse in text.BUILTIN.items():
        source_parse = SOURCE_TEXT.BUILTIN[name]
        assert _outcome(parse, decoded) == _outcome(source_parse, decoded), (name, decoded)
        write = text.DOC_WRITERS[parse]
        assert _outcome(write, decoded, service) == _outcome(SOURCE_TEXT.DOC_WRITERS[source_parse], decoded, service)
    assert _outcome(text.logfmt_fields, decoded) == _outcome(SOURCE_TEXT.logfmt_fields, decoded)


@given(value=st.text(alphabet="0123456789-T:.Z+/ ADJNOSacegloprtuvy\u0665", max_size=30))
def test_the_compiled_clock_reads_every_time_as_its_source(value: str) -> None:
    for name in ("rfc3339", "canonical", "nginx_local"):
        assert _outcome(getattr(clock, name), value) == _outcome(getattr(SOURCE_CLOCK, name), value), (name, value)
    parts = (value[:10], value[11:19], value[20:23] or None)
    for name in ("day_first", "year_first"):
        assert _outcome(getattr(clock, name), *parts) == _outcome(getattr(SOURCE_CLOCK, name), *parts), (name, value)


# -- a build that no longer matches its sources -------------------------------------------------------------------
PROBE = """import corrtrace.collector.parsers
from corrtrace.collector.parsers import compiled, text
assert corrtrace.collector.parsers.text is text
print(compiled.IN_USE, text.__file__.rsplit("/", 1)[-1], text.logfmt("msg=hi correlation_id=c-1")[0]["message"])
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """The installed ``corrtrace.*`` layout (``install_layout``'s links and start-up hook), with copies of the
    files a test edits: the parsers' folder (with the built modules and the stamp) and ``corrtrace/timestamps.py``."""
    site = tmp_path / "site"
    install_layout(ROOT, site)
    top = site / "corrtrace"
    (top / "timestamps.py").unlink()
    shutil.copy2(ROOT / "corrtrace" / "timestamps.py", top / "timestamps.py")
    (top / "collector").unlink()
    (top / "collector").mkdir()
    for entry in (ROOT / "collector").iterdir():
        if entry.name != "parsers":
            (top / "collector" / entry.name).symlink_to(entry)
    shutil.copytree(PARSERS, top / "collector" / "parsers", ignore=shutil.ignore_patterns("__pycache__"))
    yield site


def _probe(site: Path, **env: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(site), **env},
        cwd=site,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_a_source_changed_after_the_build_runs_as_python(site: Path) -> None:
    so_name = Path(text.__file__ or "").name
    assert _probe(site) == f"True {so_name} hi"
    copied = site / "corrtrace" / "collector" / "parsers" / "text.py"
    original = copied.read_text()
    copied.write_text(original.replace('"message": "" if message is None else message', '"message": "edited"'))
    assert _probe(site) == "False text.py edited"  # the edit runs, not the stale build
    copied.write_text(original)
    assert _probe(site) == f"True {so_name} hi"


def test_a_change_to_a_module_they_import_makes_the_build_stale_too(site: Path) -> None:
    with open(site / "corrtrace" / "timestamps.py", "a") as fh:
        fh.write("\n# edited after the build\n")
    assert _probe(site) == "False text.py hi"


def test_corrtrace_pure_parsers_asks_for_the_sources(site: Path) -> None:
    assert _probe(site, CORRTRACE_PURE_PARSERS="1") == "False text.py hi"
