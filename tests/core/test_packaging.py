"""One distribution, `corrtrace`: the generic folder names never become top-level imports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_maps_every_folder_under_corrtrace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("corrtrace-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"corrtrace"}
    for package in ["middleware", "collector", "alerts", "txmanager", "dashboards", "demo"]:
        assert f"corrtrace/{package}/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "corrtrace = corrtrace.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_import_works_from_any_directory(tmp_path: Path) -> None:
    code = "import corrtrace.middleware, corrtrace.collector, corrtrace.demo, sys; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
    probe = "import importlib.util as u; print(u.find_spec('middleware') is None)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True"
