"""Signed calls: the genuine one passes; unsigned, tampered, stale and replayed ones do not."""

from __future__ import annotations

import time

import pytest

from corrtrace.signing import NonceCache, SignatureError, sign_request, verify_request

SECRET = "s3cret-for-tests"


def test_genuine_call_verifies() -> None:
    headers = sign_request(SECRET, "post", "/transactions/abc/rollback", b'{"reason":"x"}')
    verify_request(SECRET, "POST", "/transactions/abc/rollback", b'{"reason":"x"}', headers, nonces=NonceCache())


@pytest.mark.parametrize(
    ("method", "path", "body", "secret"),
    [
        ("GET", "/transactions/abc/rollback", b'{"reason":"x"}', SECRET),
        ("POST", "/transactions/abd/rollback", b'{"reason":"x"}', SECRET),
        ("POST", "/transactions/abc/rollback", b'{"reason":"y"}', SECRET),
        ("POST", "/transactions/abc/rollback", b'{"reason":"x"}', "other-secret"),
    ],
)
def test_tampered_calls_fail(method: str, path: str, body: bytes, secret: str) -> None:
    headers = sign_request(SECRET, "POST", "/transactions/abc/rollback", b'{"reason":"x"}')
    with pytest.raises(SignatureError, match="does not match"):
        verify_request(secret, method, path, body, headers)


def test_unsigned_stale_and_replayed_calls_fail() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify_request(SECRET, "POST", "/x", b"", {})
    stale = sign_request(SECRET, "POST", "/x", b"", now=time.time() - 3600)
    with pytest.raises(SignatureError, match="window"):
        verify_request(SECRET, "POST", "/x", b"", stale)
    nonces = NonceCache()
    fresh = sign_request(SECRET, "POST", "/x", b"")
    verify_request(SECRET, "POST", "/x", b"", fresh, nonces=nonces)
    with pytest.raises(SignatureError, match="replayed"):
        verify_request(SECRET, "POST", "/x", b"", fresh, nonces=nonces)
    lowercase = {k.lower(): v for k, v in sign_request(SECRET, "POST", "/x", b"").items()}
    verify_request(SECRET, "POST", "/x", b"", lowercase, nonces=nonces)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="secret"):
        sign_request("", "POST", "/x", b"")
