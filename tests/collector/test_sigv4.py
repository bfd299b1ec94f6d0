"""``es_auth: aws_sigv4`` against a SigV4-verifying proxy in front of the REAL OpenSearch node: unsigned, wrongly
signed and body-tampered bulk requests are refused; the collector's signed requests land; session credentials
that rotate every second mid-run (the container credentials provider of botocore's standard chain) keep
working; ``corrtrace search`` signs the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.collector.helpers import write_lines
from tests.collector.sigv4 import (
    OS_URL,
    Issuer,
    credentials_endpoint,
    opensearch_prefix,
    signed_headers,
    verifying_proxy,
)

REGION = "eu-west-1"
TOTAL = 5000


@pytest.fixture()
def prefix() -> Iterator[str]:
    with opensearch_prefix("t-sigv4") as name:
        yield name


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        **extra,
    }


def test_unsigned_wrongly_signed_and_tampered_bulk_requests_are_refused(prefix: str) -> None:
    issuer = Issuer()
    issuer.add("AKIDGOOD", "good-secret")
    body = b'{"create":{"_index":"%s-2026.11.30","_id":"x1"}}\n{"message":"signed"}\n' % prefix.encode()
    with verifying_proxy(OS_URL, issuer, REGION) as proxy:
        url = f"{proxy.url}/_bulk"
        assert httpx.post(url, content=body, headers={"Content-Type": "application/x-ndjson"}).status_code == 403
        wrong = signed_headers(url, body, "AKIDGOOD", "not-the-secret", None, REGION)
        assert httpx.post(url, content=body, headers=wrong).status_code == 403
        good = signed_headers(url, body, "AKIDGOOD", "good-secret", None, REGION)
        tampered = body.replace(b"signed", b"forged")
        assert httpx.post(url, content=tampered, headers=good).status_code == 403
        good_no_hash = {k: v for k, v in good.items() if k.lower() != "x-amz-content-sha256"}
        assert httpx.post(url, content=tampered, headers=good_no_hash).status_code == 403  # the signature covers it
        ok = httpx.post(url, content=body, headers=good)
        assert ok.status_code == 200 and not ok.json()["errors"]
        assert len(proxy.state["denied"]) == 4
    assert httpx.get(f"{OS_URL}/{prefix}-*/_count", params={"q": "message:forged"}).json()["count"] == 0


def test_collector_ships_signed_with_rotating_session_credentials(prefix: str, tmp_path: Path) -> None:
    issuer = Issuer(lifetime=3.0)  # a key is refused 3 s after it was issued; botocore refreshes after ~1 s
    app = tmp_path / "app.log"
    write_lines(app, range(TOTAL))
    with credentials_endpoint(issuer) as creds, verifying_proxy(OS_URL, issuer, REGION, pace_until_keys=3) as proxy:
        config = tmp_path / "c.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "collector": {
                        "sinks": ["opensearch"],
                        "es_url": proxy.url,
                        "es_auth": "aws_sigv4",
                        "es_aws_region": REGION,
                        "index_prefix": prefix,
                        "data_dir": str(tmp_path / "data"),
                        "batch_max_events": 250,
                        "flush_interval": 0.1,
                    }
                }
            )
        )
        env = _clean_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{creds.url}/creds")
        run = subprocess.run(
            [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config), "--once", str(app)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "denied" not in proxy.state, proxy.state["denied"][:3]
        assert creds.state["issued"] >= 3 and len(proxy.state["keys_used"]) >= 3  # rotated mid-run
        deadline = time.monotonic() + 30  # stored is not yet searchable: the index refreshes every 1 s (or later)
        while True:
            found = subprocess.run(
                [sys.executable, "-m", "corrtrace.cli", "search", "req-7", "--config", str(config), "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
            assert found.returncode == 0, found.stderr[-2000:]
            if len(orjson.loads(found.stdout)) == TOTAL // 50 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(orjson.loads(found.stdout)) == TOTAL // 50
        unsigned = subprocess.run(
            [
                sys.executable,
                "-m",
                "corrtrace.cli",
                "search",
                "req-7",
                "--backend",
                "opensearch",
                "--es-url",
                proxy.url,
                "--index-prefix",
                prefix,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert unsigned.returncode == 1 and "403" in unsigned.stderr  # the proxy really checks
    httpx.post(f"{OS_URL}/{prefix}-*/_refresh")
    assert httpx.get(f"{OS_URL}/{prefix}-*/_count").json()["count"] == TOTAL


def test_aws_sigv4_with_no_credentials_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {"collector": {"sinks": ["opensearch"], "es_auth": "aws_sigv4", "data_dir": str(tmp_path / "data")}}
        )
    )
    app = tmp_path / "a.log"
    write_lines(app, range(3))
    run = subprocess.run(
        [sys.executable, "-m", "corrtrace.cli", "collect", "--config", str(config), "--once", str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("corrtrace collect: collector.es_auth: aws_sigv4 found no AWS")
