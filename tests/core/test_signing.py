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


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Corrtrace-Timestamp", "\u00b2"),  # a digit to str.isdigit, not to int()
        ("X-Corrtrace-Timestamp", "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660"),  # Arabic-Indic
        ("X-Corrtrace-Timestamp", "9" * 5000),  # past int()'s digit limit
        ("X-Corrtrace-Signature", "v1=" + "\u00e9" * 64),  # compare_digest refuses non-ASCII text
        ("X-Corrtrace-Signature", "v1=" + "0" * 6400),
        ("X-Corrtrace-Nonce", "\u00e9" * 16),
    ],
    ids=[
        "superscript-digit",
        "arabic-indic-digits",
        "5000-digits",
        "non-ascii-signature",
        "long-signature",
        "non-ascii-nonce",
    ],
)
def test_malformed_headers_fail_as_signature_errors(header: str, value: str) -> None:
    """Whatever an unauthenticated caller puts in the headers is a ``SignatureError`` (401), never another
    exception (a 500 and a traceback in the server's log)."""
    headers = {**sign_request(SECRET, "POST", "/x", b""), header: value}
    with pytest.raises(SignatureError, match="malformed"):
        verify_request(SECRET, "POST", "/x", b"", headers, nonces=NonceCache())


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="secret"):
        sign_request("", "POST", "/x", b"")


def test_a_full_nonce_cache_never_lets_a_dropped_nonce_replay() -> None:
    """More signed calls within the window than the cache holds: the oldest nonces are dropped, and a replay of
    one of them (it is still inside the skew window) is refused, not taken for a new call."""
    nonces = NonceCache(max_size=3)
    start = time.time()
    calls = [sign_request(SECRET, "POST", "/x", b"", now=start + i) for i in range(5)]
    for i, headers in enumerate(calls):
        verify_request(SECRET, "POST", "/x", b"", headers, nonces=nonces, now=start + i)
    for headers in calls:  # the two dropped ones as well as the three held
        with pytest.raises(SignatureError, match="replayed"):
            verify_request(SECRET, "POST", "/x", b"", headers, nonces=nonces, now=start + 5)
    later = sign_request(SECRET, "POST", "/x", b"", now=start + 6)  # a new call still passes
    verify_request(SECRET, "POST", "/x", b"", later, nonces=nonces, now=start + 6)
