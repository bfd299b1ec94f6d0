"""Session fixtures for the real backends: an Elasticsearch node and a moto server (see scripts/services).

A backend that is not running fails the tests that need it, with the command that starts it: CI has every
service, so nothing here ever skips.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from corrtrace.endpoints import backend_url

# Nothing a test runs writes into the user's data directory (the collector's and alerts' default stores).
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="corrtrace-tests-data-")
ES_URL = backend_url("ES")  # $ES_URL, else the port the services script used ($ES_PORT), else 9200
MOTO_URL = backend_url("MOTO")
OS_URL = backend_url("OS")
REGION = "us-east-1"


def _require(url: str, probe: str, name: str) -> None:
    try:
        httpx.get(url + probe, timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"{name} is not reachable at {url} ({exc}); start it with: scripts/services up", pytrace=False)


@pytest.fixture(scope="session")
def es_url() -> str:
    _require(ES_URL, "/_cluster/health", "Elasticsearch")
    return ES_URL


@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[Any]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def os_url() -> str:
    """The OpenSearch node; a missing node FAILS (never skips), naming the command that starts it."""
    try:
        info = httpx.get(OS_URL + "/", timeout=5.0).raise_for_status().json()
        httpx.get(OS_URL + "/_cluster/health?wait_for_status=yellow&timeout=30s", timeout=35.0).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(
            f"OpenSearch is not reachable at {OS_URL} ({exc}); start it with: "
            "scripts/opensearch/os.sh start (or scripts/services up)",
            pytrace=False,
        )
    if info.get("version", {}).get("distribution") != "opensearch":
        pytest.fail(f"{OS_URL} is not OpenSearch ({info.get('version')}); set OS_URL", pytrace=False)
    return OS_URL


@pytest.fixture()
def index_prefix(es: Any) -> Iterator[str]:
    """A unique lowercase prefix; every index and index template under it is removed after the test."""
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    yield prefix
    es.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
    templates = es.options(ignore_status=404).indices.get_index_template(name=f"{prefix}*")
    for item in templates.get("index_templates", []) if templates else []:
        es.options(ignore_status=404).indices.delete_index_template(name=item["name"])


@pytest.fixture(scope="session")
def _moto_session() -> str:
    _require(MOTO_URL, "/moto-api/", "moto server")
    return MOTO_URL


@pytest.fixture()
def moto_url(_moto_session: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server, reset to an empty state, with dummy AWS credentials in the environment."""
    httpx.post(_moto_session + "/moto-api/reset", timeout=10.0).raise_for_status()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": _moto_session,
    }.items():
        monkeypatch.setenv(key, value)
    return _moto_session


@pytest.fixture()
def aws(moto_url: str) -> Callable[[str], Any]:
    """``aws("sqs")`` -> a real boto3 client talking HTTP to the moto server."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=moto_url)

    return client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def free_port() -> Callable[[], int]:
    return _free_port
