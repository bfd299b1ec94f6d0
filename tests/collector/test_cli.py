"""``corrtrace collect`` and ``corrtrace search``: exactly one request's lines from each backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from corrtrace.cli import main
from tests.collector.helpers import line

SERVICES = ["gateway", "orders", "payment"]


def _write_requests(path: Path) -> None:
    """Three interleaved requests, each flowing gateway -> orders -> payment."""
    with open(path, "wb") as fh:
        for i in range(90):
            extra: dict[str, Any] = {}
            if i % 9 < 3:
                extra = {"http": {"response": {"status_code": 200}}, "event": {"duration": 1_500_000 * (i + 1)}}
            fh.write(line(i, cid=f"req-{i % 3}", service=SERVICES[(i // 3) % 3], **extra))


def _run(args: list[str], **env: str) -> Any:
    return CliRunner().invoke(main, args, env={"COLUMNS": "200", **env}, catch_exceptions=False)


@pytest.fixture()
def shipped(tmp_path: Path, es_url: str, index_prefix: str, moto_url: str) -> dict[str, Any]:
    path = tmp_path / "app.log"
    _write_requests(path)
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "data_dir": str(tmp_path / "data"),
                    "sinks": ["embedded", "elasticsearch", "cloudwatch"],
                    "es_url": es_url,
                    "index_prefix": index_prefix,
                    "cloudwatch_endpoint_url": moto_url,
                }
            }
        )
    )
    result = _run(["collect", "--config", str(config), "--once", "--json", str(path)])
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.output.strip().splitlines()[-1])
    assert stats["shipped"] == 90 and stats["cloudwatch"]["delivered"] == 90
    import httpx

    httpx.post(f"{es_url}/{index_prefix}-*/_refresh")
    return {"config": config}


@pytest.mark.parametrize("backend", ["embedded", "elasticsearch", "cloudwatch"])
def test_search_returns_exactly_one_requests_lines(shipped: dict[str, Any], backend: str) -> None:
    result = _run(["search", "req-1", "--config", str(shipped["config"]), "--backend", backend, "--json"])
    assert result.exit_code == 0, result.output
    events = orjson.loads(result.output)
    assert [e["labels"]["seq"] for e in events] == list(range(1, 90, 3))
    assert {e["correlation_id"] for e in events} == {"req-1"}
    filtered = _run(
        ["search", "req-1", "--config", str(shipped["config"]), "--backend", backend, "--json", "--service", "orders"]
    )
    assert [e["labels"]["seq"] for e in orjson.loads(filtered.output)] == [
        s for s in range(1, 90, 3) if (s // 3) % 3 == 1
    ]


def test_an_option_only_one_backend_reads_chooses_that_backend(
    shipped: dict[str, Any], es_url: str, index_prefix: str, tmp_path: Path
) -> None:
    """`search ID --es-url URL` searched the embedded store (the default) and said there was none."""
    os_nodes = f"http://127.0.0.1:1,{es_url}"  # a dead node first: the search goes on to the next
    by_url = _run(["search", "req-1", "--es-url", os_nodes, "--index-prefix", index_prefix, "--json"])
    assert by_url.exit_code == 0, by_url.output
    assert [e["labels"]["seq"] for e in orjson.loads(by_url.output)] == list(range(1, 90, 3))
    nowhere = _run(["search", "req-1", "--config", str(shipped["config"]), "--log-group", "/no/such/group"])
    assert nowhere.exit_code == 1 and "cloudwatch search failed" in nowhere.output  # not the embedded store
    chosen = _run(["search", "req-1", "--es-url", es_url, "--index-prefix", index_prefix, "--backend", "embedded"])
    assert chosen.exit_code == 1 and "embedded store" in chosen.output  # --backend still wins


def test_search_timeline_output(shipped: dict[str, Any]) -> None:
    result = _run(["search", "req-2", "--config", str(shipped["config"])])
    assert result.exit_code == 0, result.output
    assert "gateway -> orders -> payment" in result.output
    assert "30 lines" in result.output
    assert "+0 " in result.output and "+87 " in result.output  # offsets from the first line, in ms
    assert "200" in result.output and "4.5 ms" in result.output  # status and duration where present
    assert "line 2" in result.output and "line 5" in result.output and "line 1 " not in result.output


def test_collect_defaults_to_the_embedded_store(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    _write_requests(path)
    data = tmp_path / "data"
    result = _run(["collect", "--once", "--data-dir", str(data), str(path)])
    assert result.exit_code == 0, result.output
    assert (data / "store" / "events.sqlite3").exists()
    found = _run(["search", "req-0", "--data-dir", str(data), "--json"])
    assert len(orjson.loads(found.output)) == 30


@pytest.mark.parametrize("tuning", [True, False])
def test_malloc_tuning_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tuning: bool) -> None:
    """Issue 15 §5: glibc's process-wide mallopt is made only when ``collector.malloc_tuning`` says so."""
    from corrtrace.collector import cli

    calls: list[bool] = []
    monkeypatch.setattr(cli, "_tune_malloc", lambda: calls.append(True))
    path = tmp_path / "app.log"
    _write_requests(path)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"collector": {"malloc_tuning": tuning, "data_dir": str(tmp_path / "d")}}))
    result = _run(["collect", "--once", "--config", str(config), str(path)])
    assert result.exit_code == 0, result.output
    assert calls == ([True] if tuning else [])


def test_bad_input_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"collector": {"batch_max_events": "lots"}}))
    result = _run(["collect", "--config", str(config), "--once", "x.log"])
    assert result.exit_code == 2 and "collector.batch_max_events" in result.output
    config.write_text(yaml.safe_dump({"collector": {"sinks": ["kafka"]}}))
    result = _run(["collect", "--config", str(config), "--once", "x.log"])
    assert result.exit_code == 2 and "collector.sinks" in result.output
    assert _run(["collect"]).exit_code == 2
    assert _run(["search", "bad id with spaces"]).exit_code == 2
    assert _run(["search", "req-1", "--since", "yesterday-ish", "--data-dir", str(tmp_path)]).exit_code == 2
    for since in ("1\u00b2h", "9" * 5000, "9" * 20 + "h"):  # int() refuses the first two; the third overflows
        result = _run(["search", "req-1", "--since", since, "--data-dir", str(tmp_path)])
        assert result.exit_code == 2 and result.output.startswith("corrtrace search: not a time: "), result.output
        assert len(result.output) < 200  # the value is quoted cut short
    assert _run(["collect", "--help"]).exit_code == 0 and _run(["search", "--help"]).exit_code == 0


def test_a_pipe_given_as_a_file_is_refused_with_the_way_to_read_it(tmp_path: Path) -> None:
    """A FIFO is not tailed (opening it blocks, it has no offsets to checkpoint): the error says to pipe it in."""
    fifo = tmp_path / "app.pipe"
    os.mkfifo(fifo)
    result = _run(["collect", "--once", "--data-dir", str(tmp_path / "d"), str(fifo)])
    assert result.exit_code == 2 and "only a pipe, socket or device: pipe it in with --stdin" in result.output
    missing = _run(["collect", "--once", "--data-dir", str(tmp_path / "d"), str(tmp_path / "none.log")])
    assert missing.exit_code == 2 and missing.output.rstrip().endswith("matches no file")


def test_collect_reads_stdin(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lines = b"".join(line(i, cid="req-stdin") for i in range(50)) + b"not json at all\n"
    result = CliRunner().invoke(main, ["collect", "--stdin", "--data-dir", str(data), "--json"], input=lines)
    assert result.exit_code == 0, result.output
    found = _run(["search", "req-stdin", "--data-dir", str(data), "--json"])
    assert [e["labels"]["seq"] for e in orjson.loads(found.output)] == list(range(50))


def test_collect_once_stops_on_refused_credentials_and_loses_nothing(
    tmp_path: Path, es: Any, es_url: str, index_prefix: str
) -> None:
    """A 401 on every bulk request is a configuration error: `--once` exits 1 saying so, checkpoints nothing,
    and the run after the fix delivers every line exactly once."""
    from tests.collector.faultproxy import FaultProxy

    path = tmp_path / "app.log"
    _write_requests(path)

    def refuse_bulk(proxy: Any, method: str, path_: str, headers: dict[str, str], body: bytes) -> Any:
        if "_bulk" in path_:
            return (
                401,
                {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"},
                (b'{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}'),
            )
        return None

    def config(url: str) -> Path:
        file = tmp_path / "collector.yaml"
        file.write_text(
            yaml.safe_dump(
                {
                    "collector": {
                        "data_dir": str(tmp_path / "data"),
                        "sinks": ["elasticsearch"],
                        "es_url": url,
                        "index_prefix": index_prefix,
                        "backoff_initial": 0.01,
                        "backoff_max": 0.05,
                    }
                }
            )
        )
        return file

    with FaultProxy(es_url, refuse_bulk) as proxy:
        refused = CliRunner().invoke(main, ["collect", "--config", str(config(proxy.url)), "--once", str(path)])
    assert refused.exit_code == 1
    assert "refused the bulk request" in refused.output and "credentials" in refused.output
    es.indices.refresh(index=f"{index_prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    assert es.count(index=f"{index_prefix}-*", ignore_unavailable=True, allow_no_indices=True)["count"] == 0

    fixed = _run(["collect", "--config", str(config(es_url)), "--once", str(path)])
    assert fixed.exit_code == 0, fixed.output
    es.indices.refresh(index=f"{index_prefix}-*")
    assert es.count(index=f"{index_prefix}-*")["count"] == 90


@pytest.mark.parametrize(
    ("sink", "urls"),
    [("elasticsearch", "es"), ("elasticsearch", "es,localhost"), ("opensearch", "os")],
    ids=["one-node", "node-list", "opensearch"],
)
def test_collect_once_leaves_every_stored_line_searchable(
    tmp_path: Path, es_url: str, os_url: str, index_prefix: str, sink: str, urls: str
) -> None:
    """`collect --once FILE && corrtrace search ID` finds every line: the index is created beforehand with
    refreshes off, so only the collector's own refresh at the end of --once can make the lines visible."""
    import httpx
    from corrtrace.collector.sinks.elasticsearch import connect, ensure_index_template

    from tests.collector.helpers import BASE_MS, iso

    node = {"es": es_url, "os": os_url, "localhost": es_url.replace("127.0.0.1", "localhost")}
    base = node[urls.split(",")[0]]
    day = iso(BASE_MS)[:10].replace("-", ".")
    ensure_index_template(connect([base], flavor=sink), index_prefix)  # the mappings `search` relies on
    settings = {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"}}
    httpx.put(f"{base}/{index_prefix}-{day}", json=settings, timeout=60).raise_for_status()
    try:
        path = tmp_path / "app.log"
        _write_requests(path)
        config = tmp_path / "collector.yaml"
        collector = {
            "data_dir": str(tmp_path / "data"),
            "sinks": [sink],
            "es_url": [node[u] for u in urls.split(",")],
            "index_prefix": index_prefix,
        }
        config.write_text(yaml.safe_dump({"collector": collector}))
        result = _run(["collect", "--config", str(config), "--once", str(path)])
        assert result.exit_code == 0, result.output
        found = _run(["search", "req-1", "--config", str(config), "--backend", sink, "--json"])
        assert found.exit_code == 0, found.output
        assert [e["labels"]["seq"] for e in orjson.loads(found.output)] == list(range(1, 90, 3))
    finally:
        httpx.delete(f"{base}/{index_prefix}-*", timeout=60)
        httpx.delete(f"{base}/_index_template/{index_prefix}*", timeout=60)
