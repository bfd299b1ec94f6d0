"""Correlation IDs: generate them, and decide whether an untrusted one may be used.

The default generator is UUIDv7 (RFC 9562): 36 characters, unique without coordination like uuid4, but its
first 48 bits are the Unix time in milliseconds, so IDs sort by request start time and a flow's lines, an index
or a DynamoDB table keyed by the ID stay in time order.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

_VERSION_7 = 0x7000
_VARIANT = 0x8000_0000_0000_0000


def new_uuid7() -> str:
    """Return a fresh UUIDv7 string such as ``0192f0c1-7a3b-7c4d-9e5f-0123456789ab``."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))
    rand_a = (rand >> 64) & 0x0FFF
    rand_b = (rand & 0x3FFF_FFFF_FFFF_FFFF) | _VARIANT
    h = f"{millis & 0xFFFF_FFFF_FFFF:012x}{_VERSION_7 | rand_a:04x}{rand_b:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_uuid4_hex() -> str:
    """Return a random uuid4 as 32 hex characters (the format asgi-correlation-id uses)."""
    return os.urandom(16).hex()


class IdPolicy:
    """What an accepted correlation ID looks like, and how a new one is made (immutable settings).

    A plain class rather than a dataclass: importing ``dataclasses`` would cost a Lambda cold start ~5 ms.
    """

    __slots__ = ("_regex", "allowed_pattern", "generator", "max_length")
    max_length: int
    allowed_pattern: str
    generator: Callable[[], str]
    _regex: re.Pattern[str]

    def __init__(
        self,
        max_length: int = 128,
        allowed_pattern: str = r"[A-Za-z0-9\-_.:]+",
        generator: Callable[[], str] = new_uuid7,
    ) -> None:
        if max_length < 1:
            raise ValueError("IdPolicy.max_length must be at least 1")
        object.__setattr__(self, "max_length", max_length)
        object.__setattr__(self, "allowed_pattern", allowed_pattern)
        object.__setattr__(self, "generator", generator)
        object.__setattr__(self, "_regex", re.compile(allowed_pattern))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("IdPolicy is immutable; make a new one")

    def __repr__(self) -> str:
        return f"IdPolicy(max_length={self.max_length}, allowed_pattern={self.allowed_pattern!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdPolicy):
            return NotImplemented
        return (self.max_length, self.allowed_pattern, self.generator) == (
            other.max_length,
            other.allowed_pattern,
            other.generator,
        )

    def __hash__(self) -> int:
        return hash((self.max_length, self.allowed_pattern))

    def is_valid(self, value: str) -> bool:
        return 0 < len(value) <= self.max_length and self._regex.fullmatch(value) is not None


DEFAULT_POLICY = IdPolicy()

Status = Literal["accepted", "generated", "rejected"]


class Accepted(NamedTuple):
    """The ID to use, how it was obtained, and for a rejected input an excerpt that is safe to log."""

    value: str
    status: Status
    excerpt: str | None = None


def is_valid(value: str, policy: IdPolicy = DEFAULT_POLICY) -> bool:
    return policy.is_valid(value)


def safe_excerpt(value: str | bytes, limit: int = 32) -> str:
    """Escape and truncate an untrusted value so that it can appear in a log line without harm."""
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("latin-1")
    cut = value[:limit]
    escaped = cut.encode("ascii", "backslashreplace").decode("ascii")
    escaped = "".join(c if 32 <= ord(c) < 127 else f"\\x{ord(c):02x}" for c in escaped)
    return escaped + ("…" if len(value) > limit else "")


def accept(raw: str | bytes | None, policy: IdPolicy = DEFAULT_POLICY) -> Accepted:
    """Use ``raw`` when it passes ``policy``; otherwise generate a fresh ID (and keep an excerpt of ``raw``)."""
    if raw is None:
        return Accepted(policy.generator(), "generated")
    if isinstance(raw, bytes):
        if len(raw) > policy.max_length:
            return Accepted(policy.generator(), "rejected", safe_excerpt(raw))
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return Accepted(policy.generator(), "rejected", safe_excerpt(raw))
    else:
        text = raw
    if policy.is_valid(text):
        return Accepted(text, "accepted")
    if text == "":
        return Accepted(policy.generator(), "generated")
    return Accepted(policy.generator(), "rejected", safe_excerpt(text))
