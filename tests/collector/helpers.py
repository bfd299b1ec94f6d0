"""Log lines shaped like corrtrace.logging's output, for the collector tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

BASE_MS = int(time.time() * 1000) - 3_600_000  # an hour ago: inside CloudWatch's accepted window


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def event(
    seq: int,
    *,
    cid: str | None = None,
    service: str = "api",
    level: str = "INFO",
    pad: int = 0,
    ts: int | None = None,
    **extra: object,
) -> dict[str, object]:
    doc: dict[str, object] = {
        "@timestamp": iso(ts if ts is not None else BASE_MS + seq),
        "message": f"line {seq}" + ("x" * pad),
        "correlation_id": cid or f"req-{seq % 50}",
        "log": {"level": level, "logger": "test"},
        "service": {"name": service, "environment": "test"},
        "host": {"name": "h1"},
        "labels": {"seq": seq},
    }
    doc.update(extra)
    return doc


def line(seq: int, **kwargs: Any) -> bytes:
    return orjson.dumps(event(seq, **kwargs)) + b"\n"


def write_lines(path: Path, seqs: range | list[int], mode: str = "ab", **kwargs: Any) -> None:
    with open(path, mode) as fh:
        fh.write(b"".join(line(i, **kwargs) for i in seqs))


def seqs_of(docs: list[dict[str, object]]) -> list[int]:
    return [int(d["labels"]["seq"]) for d in docs]  # type: ignore[index]
