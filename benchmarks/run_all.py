"""Run every benchmark in this folder, one after another, and print what each reports.

Each benchmark measures corrtrace and its named peers in the same run and prints medians and ratios, so the
figures compare like with like on a noisy machine. `python benchmarks/run_all.py [name ...]` runs a subset.
Result lines of the form ``step: {json}`` are also kept in ``results/latest.json`` (by benchmark, with the date),
which ``capacity.py`` (run last) turns into docs/scaling.md's capacity table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LATEST = HERE / "results" / "latest.json"
RESULT_LINE = re.compile(r"(\w+): (\{.*\})")
LAST = "capacity"  # reads what the others stored


def _run(script: Path) -> tuple[int, dict[str, Any]]:
    """Run one benchmark, echoing its output, and collect its ``step: {json}`` result lines."""
    results: dict[str, Any] = {}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        match = RESULT_LINE.fullmatch(line.strip())
        if match:
            try:
                results[match.group(1)] = json.loads(match.group(2))
            except ValueError:
                pass
    return proc.wait(), results


def _store(stem: str, results: dict[str, Any]) -> None:
    stored = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    stored[stem] = {"when": time.strftime("%Y-%m-%d"), "results": results}
    LATEST.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    scripts = sorted(
        (p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")),
        key=lambda p: (p.stem == LAST, p.stem),
    )
    if argv:
        scripts = [p for p in scripts if p.stem in argv]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem}", flush=True)
        start = time.perf_counter()
        code, results = _run(script)
        print(f"=== {script.stem}: exit {code} in {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(script.stem)
        elif results:
            _store(script.stem, results)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
