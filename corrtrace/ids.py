"""Correlation IDs: generate them, and decide whether an untrusted one may be used.

The default generator is UUIDv7 (RFC 9562): 36 characters, unique without coordination like uuid4, but its
first 48 bits are the Unix time in milliseconds, so IDs sort by request start time and a flow's lines, an index
or a DynamoDB table keyed by the ID stay in time order.

``IdReader.read`` is the one place an untrusted value (header bytes, an ``environ`` string, anything from a
Lambda payload) becomes the ID to use: every adapter and ``accept`` go through it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

_tns = time.time_ns
_urandom = os.urandom
_BATCH = 512  # IDs per refill: one getrandom() call and a few C-level slice writes serve 512 IDs
_DASHES = b"-" * _BATCH
_SPACES = b" " * _BATCH
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")  # hex digit -> its low 2 bits as a variant


def _refill() -> Iterator[str]:
    """A fresh iterator over ``_BATCH`` random parts "rrr-Vrrr-rrrrrrrrrrrr" (V: the RFC 9562 variant, one of
    8 9 a b): 22 random hex digits a slot, then the dashes, the variant and a separator written over columns
    with extended slices, so no Python code runs per ID."""
    global _parts
    slots = bytearray(_urandom(_BATCH * 11).hex(), "ascii")
    slots[3::22] = slots[8::22] = _DASHES
    slots[4::22] = slots[4::22].translate(_VARIANT)
    slots[21::22] = _SPACES
    _parts = parts = iter(slots.decode("ascii").split())
    return parts


# Threads share one iterator: a list iterator's ``next`` is atomic under the GIL, so no two callers ever get
# the same part, and a refill by two threads at once only discards the loser's unread parts.
_parts: Iterator[str] = iter(())
_stamp = (0, 0, "")  # [start, end) of a millisecond in ns, its formatted "tttttttt-tttt-7"; replaced as one


def _reset_after_fork() -> None:
    global _parts
    _parts = iter(())  # a forked worker must never reuse its parent's unread random bytes


os.register_at_fork(after_in_child=_reset_after_fork)


def new_uuid7() -> str:
    """Return a fresh UUIDv7 string such as ``0192f0c1-7a3b-7c4d-9e5f-0123456789ab``.

    48-bit millisecond time, 74 random bits from ``os.urandom``. The time part is formatted once per millisecond
    and the random part pre-formatted in batches: a fresh request pays one clock read compared with the bounds of
    the current millisecond (no division), one ``next`` and one concatenation.
    """
    global _stamp
    now = _tns()
    stamp = _stamp
    if not stamp[0] <= now < stamp[1]:  # another millisecond (or the clock was set back)
        millis = now // 1_000_000
        t = hex(millis & 0xFFFF_FFFF_FFFF | 0x1_0000_0000_0000)  # "0x1" and the 12 digits: no format spec parsed
        _stamp = stamp = (millis * 1_000_000, (millis + 1) * 1_000_000, f"{t[3:11]}-{t[11:]}-7")
    try:
        part = next(_parts)
    except StopIteration:
        part = next(_refill())
    return stamp[2] + part


def new_uuid4_hex() -> str:
    """A random 128-bit ID as 32 hex characters (asgi-correlation-id's format); also the fallback ID."""
    return _urandom(16).hex()


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


_SIMPLE_CLASS = re.compile(r"\[(?:[^\]\\]|\\.)+\]\+")


def allowed_bytes(pattern: str) -> bytes | None:
    """For a policy pattern of the form ``[...]+``, the bytes it allows, else None."""
    if not _SIMPLE_CLASS.fullmatch(pattern):
        return None
    one = re.compile(pattern[:-1])
    return bytes(b for b in range(128) if one.fullmatch(chr(b)))


def letters_table(allowed: bytes) -> bytes:
    """A ``bytes.translate`` table mapping each allowed byte to ``a`` and every other byte to a space:
    ``raw.translate(table).isalpha()`` is true exactly when ``raw`` is non-empty and every byte is allowed. Two C
    calls and no per-call table: ~110 ns against ~200 ns for the regex or ``translate(None, allowed)``."""
    return bytes(0x61 if b in allowed else 0x20 for b in range(256))


ErrorHook = Callable[[str, BaseException], None]


class IdReader:
    """Turn any untrusted value into the ID to use (``read``): the policy compiled once for the hot path.

    ``on_error``: where a failing generator is reported; the reader then falls back to ``new_uuid4_hex`` so a
    request always gets an ID. Without it, a failing generator raises (the caller chose that generator).
    """

    __slots__ = ("_match_bytes", "_match_text", "generate", "letters", "max_length", "policy")
    letters: bytes | None  # the policy's allowed bytes as ``letters_table`` (None for a pattern that is not one class)

    def __init__(self, policy: IdPolicy = DEFAULT_POLICY, on_error: ErrorHook | None = None) -> None:
        self.policy = policy
        self.max_length = policy.max_length
        self._match_text = policy._regex.fullmatch
        allowed = allowed_bytes(policy.allowed_pattern)
        self.letters = letters_table(allowed) if allowed is not None else None
        try:
            self._match_bytes: Callable[[bytes], object] | None = re.compile(
                policy.allowed_pattern.encode("ascii")
            ).fullmatch
        except (UnicodeEncodeError, re.error):
            self._match_bytes = None
        self.generate = _checked_generator(policy.generator, on_error)

    def valid_bytes(self, raw: bytes) -> bool:
        if self.letters is not None:  # a non-ASCII byte is never allowed; empty is not alphabetic
            return len(raw) <= self.max_length and raw.translate(self.letters).isalpha()
        if not raw or len(raw) > self.max_length or not raw.isascii():
            return False
        if self._match_bytes is not None:
            return self._match_bytes(raw) is not None
        return self._match_text(raw.decode("ascii")) is not None

    def valid_text(self, raw: str) -> bool:
        """Whether a text value (a WSGI ``environ`` value, a payload string) passes the policy.

        ``encode()`` without arguments once ``isascii`` holds: the same bytes as ``encode("ascii")``, and the
        argument parsing and codec lookup it skips are a tenth of the check (an incoming ID pays it).
        """
        if self.letters is not None:
            return raw.isascii() and len(raw) <= self.max_length and raw.encode().translate(self.letters).isalpha()
        return 0 < len(raw) <= self.max_length and self._match_text(raw) is not None

    def read(self, raw: object) -> Accepted:
        """The ID for ``raw`` (bytes, str, or any value a JSON payload holds; None when absent)."""
        if type(raw) is bytes and self.valid_bytes(raw):
            return _new(Accepted, (raw.decode("ascii"), "accepted", None))
        if type(raw) is str and self.valid_text(raw):
            return _new(Accepted, (raw, "accepted", None))
        if raw is None or raw == "" or raw == b"":
            return _new(Accepted, (self.generate(), "generated", None))
        return Accepted(self.generate(), "rejected", safe_excerpt(raw if isinstance(raw, str | bytes) else repr(raw)))


_new = tuple.__new__  # builds an ``Accepted`` without the Python-level ``__new__`` call (hot path)


def _checked_generator(generator: Callable[[], str], on_error: ErrorHook | None) -> Callable[[], str]:
    """The policy's generator; with ``on_error``, one that falls back to a random hex ID when it fails."""
    if on_error is None or generator is new_uuid7 or generator is new_uuid4_hex:
        return generator  # the core's own generators cannot fail: no wrapper on the hot path

    def generate() -> str:
        try:
            value = generator()
            if isinstance(value, str) and value.isascii() and "\r" not in value and "\n" not in value:
                return value
            raise TypeError(f"IdPolicy.generator returned {safe_excerpt(repr(value))}, expected an ASCII str")
        except Exception as exc:
            on_error("id-generator", exc)
            return new_uuid4_hex()

    return generate


_readers: dict[IdPolicy, IdReader] = {}


def accept(raw: str | bytes | None, policy: IdPolicy = DEFAULT_POLICY) -> Accepted:
    """Use ``raw`` when it passes ``policy``; otherwise generate a fresh ID (and keep an excerpt of ``raw``)."""
    reader = _readers.get(policy)
    if reader is None or reader.policy is not policy:
        if len(_readers) >= 64:
            _readers.clear()
        reader = _readers[policy] = IdReader(policy)
    return reader.read(raw)
