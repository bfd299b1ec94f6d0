"""The generated JSON log line every shipping benchmark uses (about 350 bytes, corrtrace's ECS shape)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

BASE_MS = int(time.time() * 1000) - 3_600_000
SERVICES = ["gateway", "orders", "payment", "inventory"]


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def make_line(i: int, ids: int = 10_000, size: int = 350) -> bytes:
    doc: dict[str, Any] = {
        "@timestamp": iso(BASE_MS + i // 10),
        "message": "GET /api/orders handled",
        "correlation_id": f"01890a5d-ac96-774b-bcce-{i % ids:012d}",
        "log": {"level": "INFO", "logger": "app.http"},
        "service": {"name": SERVICES[i % 4], "environment": "bench"},
        "host": {"name": "node-1"},
        "event": {"dataset": "corrtrace.access", "duration": 1234567 + i},
        "http": {"response": {"status_code": 200}},
        "labels": {"seq": i},
    }
    raw = orjson.dumps(doc)
    doc["message"] += " " + "x" * max(0, size - len(raw) - 1)
    return orjson.dumps(doc)


def write_file(path: Path, n: int, ids: int = 10_000) -> None:
    with open(path, "wb") as fh:
        for start in range(0, n, 50_000):
            fh.write(b"".join(make_line(i, ids) + b"\n" for i in range(start, min(n, start + 50_000))))
