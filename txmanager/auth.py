"""Authenticate a signed call (manager and participant endpoints share this): signature, freshness, replay.

Verification happens before anything else is read or changed, so an unsigned, tampered or replayed call gets
401 and has no effect. Replays are caught per process by a ``NonceCache`` and, when a ``shared`` check is given
(the manager's DynamoDB nonce items), across instances and restarts too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from corrtrace.shapes import whole_number
from corrtrace.signing import NONCE_HEADER, NonceCache, SignatureError, verify_request

MAX_SKEW = 300.0


def declares_more_than(content_length: str, limit: int) -> bool:
    """A ``Content-Length`` header over ``limit`` bytes, read before the body so an oversized call is refused
    (413) unread; one that is not a plain number is left to the capped read of the body."""
    declared = whole_number(content_length)
    return declared is not None and declared > limit


class Verifier:
    """Checks one call; raises ``SignatureError`` with a reason that is safe to return to the caller."""

    def __init__(
        self,
        secret: str,
        *,
        nonces: NonceCache | None = None,
        shared: Callable[[str], bool] | None = None,
        max_skew: float = MAX_SKEW,
    ) -> None:
        if not secret:
            raise SignatureError("no signing secret configured")
        self._secret = secret
        self.nonces = nonces if nonces is not None else NonceCache(ttl=2 * max_skew)
        self._shared = shared
        self.max_skew = max_skew

    def check(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        verify_request(self._secret, method, path, body, headers, nonces=self.nonces, max_skew=self.max_skew)
        if self._shared is not None:
            nonce = next(v for k, v in headers.items() if k.lower() == NONCE_HEADER.lower())
            if not self._shared(nonce):
                raise SignatureError("replayed request (nonce already used)")
