"""The repository stands alone: nothing in it names a path outside it, and a copy of it with nothing beside it
passes the fast tests that read fixtures, schemas and docs (the tests that once read a sibling folder)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", ".services", "build", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# Paths and documents that live outside the repository (split so that this file does not match itself).
OUTSIDE = re.compile(
    "|".join(
        [
            r"/" + "work/",
            r"\.\./" + "shared",
            r"\bshared/(?:aws-events|grafana-schema|specs|seed|hooks)",
            r"\bspecs/",
            r"grafana-" + "schema",
            r"\b(?:architecture|cloudwatch-filter-patterns|log-delivery|aws-emulation|middleware-anchors)" + r"\.md",
        ]
    )
)
# Fast tests that read files of the repository: the AWS event fixtures, the vendored schemas, the tree itself.
FAST_PART = [
    "tests/core/test_self_contained.py::test_no_file_names_a_path_outside_the_repository",
    "tests/dashboards/test_build_validate.py",
    "tests/alerts/test_handler.py",
    "tests/demo/test_stores_and_handler.py",
]

# Imported at start-up from PYTHONPATH: the copy's package is imported before the copy's own folder is on sys.path
# (its raw ``corrtrace/`` folder would shadow the installed layout), and this checkout's editable finder is dropped.
SITECUSTOMIZE = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
import corrtrace
"""


def repository_files(root: Path) -> list[Path]:
    """Tracked and new (not ignored) files in a git checkout; every file outside build/cache folders otherwise."""
    if (root / ".git").exists():
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=root,
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .split("\0")
        )
        return [root / name for name in listed if name and (root / name).is_file()]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / name for name in files]
    return found


def install_layout(source: Path, site: Path) -> None:
    """The installed ``corrtrace.*`` layout of ``source`` (its setup.py's folder map) as symlinks under ``site``,
    plus a sitecustomize that makes it win over this checkout's editable install (fast: no wheel build)."""
    tree = ast.parse((source / "setup.py").read_text())
    folders = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FOLDERS" for t in node.targets)
    )
    top = site / "corrtrace"
    top.mkdir(parents=True)
    for entry in (source / folders["corrtrace"]).iterdir():
        (top / entry.name).symlink_to(entry)
    for package, folder in folders.items():
        if package != "corrtrace":
            (site / package.replace(".", "/")).symlink_to(source / folder)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)


def test_no_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in repository_files(ROOT):
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert offenders == []


def test_a_copy_of_the_repository_alone_passes_the_fast_tests(tmp_path: Path) -> None:
    copy = tmp_path / "alone" / "corrtrace"
    for path in repository_files(ROOT):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    site = tmp_path / "site"
    install_layout(copy, site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "import corrtrace.dashboards as d; print(d.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.startswith(str(site)), probe.stdout + probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *FAST_PART],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"the copy failed its fast tests:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}", pytrace=False)
    assert " passed" in result.stdout.splitlines()[-1]
