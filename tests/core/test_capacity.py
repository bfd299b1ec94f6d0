"""benchmarks/capacity.py: the scaling table follows the latest benchmark figures, falling back to the reference."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("capacity", ROOT / "benchmarks" / "capacity.py")
assert spec and spec.loader
capacity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(capacity)

REFERENCE = {
    "reference": {
        "events_per_s": 10_000,
        "node_docs_per_s": 40_000,
        "calls_per_transaction": 20,
        "manager_transactions_per_s": 0,
        "source": "test",
    }
}


def test_the_table_moves_with_the_latest_benchmark(tmp_path: Path) -> None:
    base = capacity.model(REFERENCE)
    assert [r["collectors"] for r in base["rows"]] == [1, 10, 100, 1000]
    assert base["rows"][2]["es_nodes"] == 50 and base["rows"][0]["es_nodes"] == 3  # 2 copies / 40k; 3 at least
    assert base["rows"][3]["managers"] is None and "not measured" in capacity.render(base)
    faster = {
        **REFERENCE,
        "collector": {"when": "today", "results": {"file_to_elasticsearch": {"events_per_s": 20_000}}},
    }
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(faster))
    moved = capacity.model(capacity.load(path))
    assert [r["collectors"] for r in moved["rows"]] == [1, 5, 50, 500]
    assert moved["units"]["collector_events_per_s"][1] == "collector.file_to_elasticsearch.events_per_s (today)"


def test_the_committed_figures_produce_the_documented_table() -> None:
    table = capacity.render(capacity.model(capacity.load()))
    doc = (ROOT / "docs" / "scaling.md").read_text()
    assert table[table.index("| load") :] in doc
