"""Fixtures of the demo tests: a private moto server per module (never the shared one on 5000)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from corrtrace.demo.processes import free_port


@pytest.fixture(scope="module")
def own_moto() -> Iterator[str]:
    """A moto server of our own, in this process, on a free port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def own_aws(own_moto: str) -> Callable[[str], Any]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=own_moto)

    return client
