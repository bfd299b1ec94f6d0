"""Malformed variants of a sample event for the "any field of any shape" tests: every field, at any depth,
replaced by each odd value in turn (one change per variant, so a failure names its field)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

ODD: Sequence[Any] = (None, "x", 7, [], [None], {"a": None}, True)


def field_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every field and list item under ``node``, parents before children."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*path, key)
        yield from field_paths(value, (*path, key))


def replaced(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``node`` with the field at ``path`` set to ``value``."""
    out = copy.deepcopy(node)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return out


def variants(node: Any, odd: Sequence[Any] = ODD) -> Iterator[Any]:
    """``node`` with one field replaced by one odd value, for every field and value."""
    for path in field_paths(node):
        for value in odd:
            yield replaced(node, path, value)
