"""Find and load Grafana's JSON Schemas: the vendored copy in the package, or a folder the caller names.

The schemas are strict draft-07 files, one per kind. Their ``oneOf`` unions have no discriminator (an
Elasticsearch ``raw_data`` metric with settings matches two branches), so every ``oneOf`` is rewritten to
``anyOf`` before use: the documented quirk, handled here instead of editing the files.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

VENDORED = Path(__file__).resolve().parent / "schemas"

# panel ``type`` id -> schema file stem (the files have no root schema: use ``#/definitions/Options``)
PANEL_SCHEMAS: dict[str, str] = {
    "logs": "logs",
    "table": "table",
    "nodeGraph": "nodegraph",
    "state-timeline": "statetimeline",
    "timeseries": "timeseries",
    "barchart": "barchart",
    "stat": "stat",
    "text": "text",
    "piechart": "piechart",
    "bargauge": "bargauge",
    "gauge": "gauge",
    "histogram": "histogram",
    "heatmap": "heatmap",
    "status-history": "statushistory",
    "trend": "trend",
    "xychart": "xychart",
    "candlestick": "candlestick",
    "canvas": "canvas",
    "geomap": "geomap",
    "news": "news",
    "dashlist": "dashboardlist",
    "annolist": "annotationslist",
    "datagrid": "datagrid",
    "debug": "debug",
}


def _one_of_to_any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _one_of_to_any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_one_of_to_any_of(v) for v in node]
    return node


@functools.lru_cache(maxsize=128)
def load(stem: str, directory: str | None = None) -> dict[str, Any]:
    """The schema ``<stem>.jsonschema.json`` from ``directory`` (default: the vendored copy), quirk-fixed."""
    folder = Path(directory) if directory else VENDORED
    path = folder / f"{stem}.jsonschema.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"schema {path} not found; pass --schemas DIR naming a folder of Grafana's *.jsonschema.json files"
        ) from None
    fixed: dict[str, Any] = _one_of_to_any_of(raw)
    return fixed


def definition(stem: str, name: str, directory: str | None = None) -> dict[str, Any] | None:
    """A self-contained schema for ``#/definitions/<name>`` of ``stem`` (its siblings kept for ``$ref``)."""
    whole = load(stem, directory)
    if name not in whole.get("definitions", {}):
        return None
    return {"$schema": whole.get("$schema"), "definitions": whole["definitions"], "$ref": f"#/definitions/{name}"}
