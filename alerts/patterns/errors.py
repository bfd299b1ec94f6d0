"""The one error type for a bad filter pattern: it names the position and the reason, as AWS does."""

from __future__ import annotations

from corrtrace.errors import InvalidInput


class PatternError(InvalidInput):
    """An invalid filter pattern. ``position`` is the 0-based character offset, ``reason`` the short cause."""

    def __init__(self, reason: str, position: int, pattern: str = "") -> None:
        self.reason = reason
        self.position = position
        self.pattern = pattern
        super().__init__(f"Invalid filter pattern at position {position}: {reason}")
