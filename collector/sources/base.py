"""What every source gives the pipeline: lines with their position, and what it knows about where they came
from (file paths and device/inode for the checkpoint, identities that cannot be read again)."""

from __future__ import annotations

from typing import Protocol

from corrtrace.collector.parsers import LineFormat

RawLine = tuple[str, int, int, bytes]  # (source identity, start offset, end offset, line without newline)


class Source(Protocol):
    """A source names each line by ``(identity, start, end)``; the identity is the source's own business (a
    file's head fingerprint, ``stdin-<random>``): the pipeline only asks the questions below."""

    fmt: LineFormat | None  # how its lines are parsed (None: the default formats)

    def read(self, max_lines: int, max_bytes: int, final: bool = False) -> list[RawLine]:
        """Up to ``max_lines`` complete lines and about ``max_bytes``; ``final``: the run ends, flush what is held."""

    def at_eof(self) -> bool: ...

    def paths(self) -> dict[str, str]:
        """Identity -> file path (named in dead letters and kept in the checkpoint); streams have none."""

    def identities(self) -> dict[str, tuple[int, int]]:
        """Identity -> (device, inode), kept in the checkpoint to find a file renamed while down."""

    def unresumable(self) -> set[str]:
        """Identities whose lines cannot be read again after a restart (a stream): never checkpointed."""

    def close(self) -> None: ...
