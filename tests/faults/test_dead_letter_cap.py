"""Months of poison lines fill a bounded part of the disk: the dead-letter file is rotated at its cap
(collector/README.md, "Faults"), the newest entries kept, every line still counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from corrtrace.collector.retry import DeadLetters

from tests.faults.helpers import collect, no_traceback


def _entries(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def test_the_dead_letter_file_rotates_at_its_cap_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = DeadLetters(path, max_bytes=4096, keep=2)
    for i in range(60):  # ~240 bytes each: about 17 entries per file
        dead.add("elasticsearch", "mapper_parsing_exception", b'{"correlation_id":"p-%d","pad":"%s"}' % (i, b"x" * 120))
    files = [path, path.with_name("dead.jsonl.1"), path.with_name("dead.jsonl.2")]
    assert not path.with_name("dead.jsonl.3").exists()  # keep=2: the oldest were dropped
    assert all(f.stat().st_size <= 4096 for f in files)
    ids = [orjson.loads(e["event"])["correlation_id"] for f in reversed(files) for e in _entries(f)]
    assert ids == [f"p-{i}" for i in range(60 - len(ids), 60)]  # the newest, in order, none missing in between
    assert dead.count == 60 and dead.rotations >= 3

    only = DeadLetters(tmp_path / "only.jsonl", max_bytes=4096, keep=0)
    for _ in range(40):
        only.add("embedded", "cannot encode", b"x" * 200)
    assert (tmp_path / "only.jsonl").stat().st_size <= 4096 and not (tmp_path / "only.jsonl.1").exists()

    big = DeadLetters(tmp_path / "big.jsonl", max_bytes=100, keep=1)
    big.add("embedded", "cannot encode", b"y" * 500)  # an entry past the cap is still written, alone in its file
    big.add("embedded", "cannot encode", b"z" * 500)
    assert [len(_entries(tmp_path / n)) for n in ("big.jsonl", "big.jsonl.1")] == [1, 1]


def test_collect_caps_its_dead_letters_as_configured(tmp_path: Path, es_url: str, index_prefix: str) -> None:
    """A real run: lines the Elasticsearch node refuses (a text status code) past a 1 MB cap."""
    log = tmp_path / "app.log"
    pad = "x" * 3000
    refused = 400  # ~2.5 MB of dead letters (each keeps the event and the line as read)
    log.write_text(
        "".join(
            f'{{"correlation_id":"r-{i}","http":{{"response":{{"status_code":"bad"}}}},"pad":"{pad}"}}\n'
            for i in range(refused)
        )
        + '{"correlation_id":"ok","labels":{"seq":1}}\n'
    )
    data = tmp_path / "d"
    config = tmp_path / "collector.yaml"
    settings = {"sinks": ["elasticsearch"], "es_url": es_url, "index_prefix": index_prefix}
    config.write_text(yaml.safe_dump({"collector": {**settings, "dead_letter_max_mb": 1, "dead_letter_files": 1}}))
    result = collect("--once", "--config", str(config), "--data-dir", str(data), str(log))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert f"{refused + 1} lines read, 1 stored, {refused} dead-lettered" in result.stderr
    assert "dead-letter file" in result.stderr and "moved to" in result.stderr  # the rotation is told
    current, older = data / "dead-letters.jsonl", data / "dead-letters.jsonl.1"
    assert current.stat().st_size <= 1 << 20 and older.stat().st_size <= 1 << 20
    assert not (data / "dead-letters.jsonl.2").exists()
    last = _entries(current)[-1]
    assert orjson.loads(last["event"])["correlation_id"] == f"r-{refused - 1}" and last["file"] == str(log)
