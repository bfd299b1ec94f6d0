"""collector/sinks/node_client.py: one node without elasticsearch-py, against the REAL node (directly, and through
a fault proxy that records what arrives and answers chosen requests itself)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from corrtrace.collector.sinks.elasticsearch import BulkClient, ensure_index_template
from corrtrace.collector.sinks.node_client import NodeClient

from corrtrace.errors import PermanentError, TransientError
from tests.collector.faultproxy import FaultProxy
from tests.collector.helpers import write_lines


def test_collect_to_one_node_ships_everything_without_importing_elasticsearch_py(
    tmp_path: Path, es: Any, es_url: str, index_prefix: str
) -> None:
    """elasticsearch-py's import is about 0.6 s of CPU per run; a single node does not need it."""
    path = tmp_path / "app.log"
    write_lines(path, range(300))
    config = tmp_path / "collector.yaml"
    section = {"sinks": ["elasticsearch"], "es_url": es_url, "index_prefix": index_prefix, "data_dir": str(tmp_path)}
    config.write_text(yaml.safe_dump({"collector": section}))
    script = (
        "import sys\nfrom corrtrace.cli import main\n"
        f"try:\n    main(['collect', '--config', {str(config)!r}, '--once', {str(path)!r}])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print(code, 'elasticsearch' in sys.modules, 'elastic_transport' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["0", "False", "False"], run.stdout + run.stderr[-2000:]
    es.indices.refresh(index=f"{index_prefix}-*")
    assert es.count(index=f"{index_prefix}-*")["count"] == 300


def test_node_client_sends_the_credentials_and_sorts_refusals(es_url: str, index_prefix: str) -> None:
    seen: list[tuple[str, str | None]] = []

    def hook(proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        seen.append((path, next((v for k, v in headers.items() if k.lower() == "authorization"), None)))
        status = proxy.state.get("status")
        if status and "_bulk" in path:
            reply = {"error": {"type": "injected_exception", "reason": "by the proxy"}, "status": status}
            return status, {"Content-Type": "application/json"}, orjson.dumps(reply)
        return None

    action = b'{"create":{"_index":"%s-2026.11.30","_id":"a-1"}}\n{"message":"m"}\n' % index_prefix.encode()
    with FaultProxy(es_url, hook) as proxy:
        client = NodeClient(proxy.url, api_key="key-1")
        ensure_index_template(client, index_prefix)  # the sink's adapter takes it as it is
        assert client.bulk(action)["errors"] is False
        assert client.bulk(action)["items"][0]["create"]["status"] == 409  # the id: stored once
        assert client.index_names(f"{index_prefix}-*") == [f"{index_prefix}-2026.11.30"]
        proxy.state["status"] = 401
        with pytest.raises(PermanentError, match="HTTP 401: injected_exception: by the proxy"):
            client.bulk(action)
        proxy.state["status"] = 503
        with pytest.raises(TransientError, match="HTTP 503"):
            client.bulk(action)
        proxy.down = True  # the kept-alive connection is cut: sent again on a new one, cut again
        with pytest.raises(TransientError, match=proxy.url):
            client.bulk(action)
        proxy.down = False
        client.delete_indices([f"{index_prefix}-2026.11.30"])
        assert client.index_names(f"{index_prefix}-*") == []
        client.close()
    assert seen and {auth for _, auth in seen} == {"ApiKey key-1"}


def test_node_client_takes_basic_auth_from_the_url_and_never_shows_it() -> None:
    client = NodeClient("https://user:p%40ss@es.example:9200")
    assert isinstance(client, BulkClient)  # every request the sink makes (a new one must be added here too)
    assert client._headers["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert "p@ss" not in repr(client) and "p%40ss" not in client.url
    with pytest.raises(ValueError, match="not an http"):
        NodeClient("es.example:9200")
