"""HMAC signatures for calls between the transaction manager and its participants.

The signature covers method, path, body digest, timestamp and a nonce; the verifier rejects a call that is
unsigned, altered, older than ``max_skew`` seconds, or a replay of a nonce it has already seen.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from corrtrace.errors import CorrtraceError
from corrtrace.shapes import whole_number

TIMESTAMP_HEADER = "X-Corrtrace-Timestamp"
NONCE_HEADER = "X-Corrtrace-Nonce"
SIGNATURE_HEADER = "X-Corrtrace-Signature"
_SCHEME = "v1="
_SIGNATURE_LENGTH = len(_SCHEME) + 64  # v1= and a SHA-256 hex digest
_TIMESTAMP_DIGITS = 12  # epoch seconds until the year 33658: longer is not a time


class SignatureError(CorrtraceError):
    """The call is not authentic; the message says why (never echoing the secret)."""


def _canonical(method: str, path: str, body: bytes, timestamp: str, nonce: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, timestamp, nonce, digest)).encode()


def _key(secret: str | bytes) -> bytes:
    if not secret:
        raise SignatureError("no signing secret configured")
    return secret.encode() if isinstance(secret, str) else secret


def sign_request(
    secret: str | bytes, method: str, path: str, body: bytes = b"", *, now: float | None = None
) -> dict[str, str]:
    """Return the headers that authenticate this call."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = os.urandom(16).hex()
    mac = hmac.new(_key(secret), _canonical(method, path, body, timestamp, nonce), hashlib.sha256)
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: _SCHEME + mac.hexdigest()}


class NonceCache:
    """Nonces seen within the skew window, so that a captured call cannot be replayed.

    At most ``max_size`` are held. One dropped to make room (more signed calls within ``ttl`` than that) could be
    replayed, so every call issued no later than a dropped one is refused from then on: under such a flood a late
    legitimate call fails closed (its sender signs it again), a replay never passes."""

    def __init__(self, ttl: float = 600.0, max_size: int = 100_000) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._seen: OrderedDict[str, tuple[float, float]] = OrderedDict()  # nonce -> (seen at, issued at)
        self._floor = float("-inf")  # the latest issue time among nonces dropped for room
        self._lock = threading.Lock()

    def add(self, nonce: str, now: float | None = None, issued: float | None = None) -> bool:
        """Record ``nonce`` of a call signed at ``issued`` (default ``now``); False when it may be a replay."""
        now = time.time() if now is None else now
        issued = now if issued is None else issued
        with self._lock:
            seen = self._seen
            while seen and next(iter(seen.values()))[0] < now - self._ttl:  # older than the window: no longer needed
                seen.popitem(last=False)
            if nonce in seen or issued <= self._floor:
                return False
            while len(seen) >= self._max_size:
                self._floor = max(self._floor, seen.popitem(last=False)[1][1])
            seen[nonce] = (now, issued)
            return True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _well_formed(nonce: str, signature: str) -> bool:
    """A nonce and signature of the shapes ``sign_request`` writes, checked before either is used
    (``compare_digest`` refuses non-ASCII text)."""
    return (
        (nonce + signature).isascii()
        and len(nonce) <= 64
        and len(signature) == _SIGNATURE_LENGTH
        and signature.startswith(_SCHEME)
    )


def verify_request(
    secret: str | bytes,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    nonces: NonceCache | None = None,
    max_skew: float = 300.0,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless the headers prove this exact call came from a holder of ``secret``."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    nonce = _header(headers, NONCE_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not (timestamp and nonce and signature):
        raise SignatureError("missing signature headers")
    issued = whole_number(timestamp, _TIMESTAMP_DIGITS)  # ASCII digits only: int() reads other scripts' too
    if issued is None or not _well_formed(nonce, signature):
        raise SignatureError("malformed signature headers")
    current = time.time() if now is None else now
    if abs(current - issued) > max_skew:
        raise SignatureError("signature timestamp outside the allowed window")
    expected = hmac.new(_key(secret), _canonical(method, path, body, timestamp, nonce), hashlib.sha256)
    if not hmac.compare_digest(_SCHEME + expected.hexdigest(), signature):
        raise SignatureError("signature does not match the request")
    if nonces is not None and not nonces.add(nonce, current, issued):
        raise SignatureError("replayed request (nonce already used)")
