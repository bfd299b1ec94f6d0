"""A SigV4-verifying proxy in front of the REAL OpenSearch node, the way Amazon OpenSearch Service checks requests:
every request's signature is recomputed with botocore from the credentials the test issued; a missing, wrong,
expired or body-mismatched signature gets 403 and never reaches the node. Also a container-credentials endpoint
(``AWS_CONTAINER_CREDENTIALS_FULL_URI``) that hands out short-lived session keys, for rotation mid-run."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from corrtrace.endpoints import backend_url
from tests.collector.faultproxy import FaultProxy

OS_URL = backend_url("OS")  # $OS_URL, else the port the services script used ($OS_PORT), else 9201
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})"
)


class Issuer:
    """Session credentials the proxy accepts: each valid for ``lifetime`` seconds after it was issued."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.keys: dict[str, tuple[str, str | None, float]] = {}  # access key -> (secret, token, valid until)
        self.lock = threading.Lock()

    def add(self, access_key: str, secret: str, token: str | None = None, lifetime: float | None = None) -> None:
        with self.lock:
            self.keys[access_key] = (secret, token, time.time() + (lifetime or self.lifetime))

    def issue(self) -> dict[str, str]:
        """New session keys, in the container-credentials JSON shape. botocore refreshes credentials that expire
        within 15 minutes, so an Expiration 15 min + 1 s away makes it fetch new ones a second later."""
        access_key, secret, token = f"ASIA{secrets.token_hex(8).upper()}", secrets.token_hex(20), secrets.token_hex(24)
        self.add(access_key, secret, token)
        expiry = datetime.now(UTC) + timedelta(minutes=15, seconds=1)
        return {
            "AccessKeyId": access_key,
            "SecretAccessKey": secret,
            "Token": token,
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def lookup(self, access_key: str) -> tuple[str, str | None] | None:
        with self.lock:
            found = self.keys.get(access_key)
        if found is None or found[2] < time.time():
            return None
        return found[0], found[1]


def credentials_endpoint(issuer: Issuer) -> FaultProxy:
    """An HTTP endpoint answering every GET with freshly issued session credentials."""

    def hook(proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes):
        proxy.state["issued"] = proxy.state.get("issued", 0) + 1
        return 200, {"Content-Type": "application/json"}, orjson.dumps(issuer.issue())

    return FaultProxy("http://127.0.0.1:9", hook)


def verifying_proxy(
    upstream: str, issuer: Issuer, region: str, service: str = "es", pace_until_keys: int = 0
) -> FaultProxy:
    """Forward only requests whose SigV4 signature botocore reproduces; answer 403 to the rest.

    ``pace_until_keys``: hold each good request 0.5 s until that many distinct keys have signed, so a run lasts
    through the rotations a test wants to see however fast the collector ships (a slow domain, not a timing bet).
    """

    def deny(proxy: FaultProxy, why: str) -> tuple[int, dict[str, str], bytes]:
        with proxy.lock:
            proxy.state.setdefault("denied", []).append(why)
        return 403, {"Content-Type": "application/json"}, orjson.dumps({"message": why})

    def hook(proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes):
        lower = {k.lower(): v for k, v in headers.items()}
        match = _AUTH.fullmatch(lower.get("authorization", ""))
        if match is None:
            return deny(proxy, "missing authentication token")
        access_key, day, req_region, req_service, signed, signature = match.groups()
        found = issuer.lookup(access_key)
        if found is None:
            return deny(proxy, "the security token included in the request is invalid or expired")
        secret, token = found
        if (req_region, req_service) != (region, service) or lower.get("x-amz-security-token") != token:
            return deny(proxy, "credential scope or token mismatch")
        digest = hashlib.sha256(body).hexdigest()
        if lower.get("x-amz-content-sha256", digest) != digest:
            return deny(proxy, "the provided x-amz-content-sha256 header does not match the body")
        stamp = lower.get("x-amz-date", "")
        if (
            not stamp.startswith(day)
            or abs(time.time() - datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()) > 300
        ):
            return deny(proxy, "signature expired or x-amz-date missing")
        names = signed.split(";")
        if "host" not in names:
            return deny(proxy, "host is not signed")
        request = AWSRequest(
            method=method,
            url=f"http://{lower['host']}{path}",
            data=body,
            headers={n: lower[n] for n in names if n in lower},
        )
        request.context["timestamp"] = stamp
        auth = SigV4Auth(Credentials(access_key, secret, token), service, region)
        canonical = auth.canonical_request(request)
        expected = auth.signature(auth.string_to_sign(request, canonical), request)
        if not secrets.compare_digest(expected, signature):
            return deny(proxy, "the request signature we calculated does not match the signature you provided")
        with proxy.lock:
            keys_used = proxy.state.setdefault("keys_used", set())
            keys_used.add(access_key)
            pacing = len(keys_used) < pace_until_keys
        if pacing:
            time.sleep(0.5)
        return None  # forward to the real node

    return FaultProxy(upstream, hook)


def signed_headers(
    url: str,
    body: bytes,
    access_key: str,
    secret: str,
    token: str | None,
    region: str,
    method: str = "POST",
    service: str = "es",
) -> dict[str, str]:
    """Headers of a request signed by botocore (for the tests that hand-craft good and bad requests)."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/x-ndjson"})
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    SigV4Auth(Credentials(access_key, secret, token), service, region).add_auth(request)
    return dict(request.headers.items())


@contextmanager
def opensearch_prefix(stem: str) -> Iterator[str]:
    """A unique index prefix on the real OpenSearch node; its indices and index template go afterwards."""
    name = f"{stem}-{os.getpid()}-{os.urandom(3).hex()}"
    try:
        yield name
    finally:
        httpx.delete(f"{OS_URL}/{name}-*", timeout=60)
        httpx.delete(f"{OS_URL}/_index_template/{name}", timeout=60)
