"""Syntax tree of a parsed filter pattern (one node type per construct the grammar names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "<", ">", "<=", ">="]


@dataclass(frozen=True)
class MatchAll:
    """The empty, blank or ``" "`` pattern."""


@dataclass(frozen=True)
class Terms:
    """Unstructured terms: all of ``required``, none of ``excluded``; ``optional`` only when alone (OR)."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Regex:
    """``%...%``: ``source`` as written, ``python`` the translated expression."""

    source: str
    python: str


@dataclass(frozen=True)
class Value:
    """Right-hand side of a comparison: a number, a string (``*`` wildcards at the ends) or a regex."""

    kind: Literal["number", "string", "regex", "any"]
    text: str
    number: float = 0.0
    regex: Regex | None = None


@dataclass(frozen=True)
class Step:
    """One selector step: a key, an index, or a wildcard (``[*]`` / ``.*``)."""

    kind: Literal["key", "index", "any_index", "any_key"]
    key: str = ""
    index: int = 0


@dataclass(frozen=True)
class Selector:
    text: str
    steps: tuple[Step, ...]

    @property
    def wildcards(self) -> int:
        return sum(1 for s in self.steps if s.kind in ("any_index", "any_key"))


@dataclass(frozen=True)
class Compare:
    selector: Selector
    op: Op
    value: Value


@dataclass(frozen=True)
class IsTest:
    """``IS NULL`` / ``IS TRUE`` / ``IS FALSE`` / ``NOT EXISTS``."""

    selector: Selector
    what: Literal["null", "true", "false", "not_exists"]


@dataclass(frozen=True)
class BoolOp:
    op: Literal["&&", "||"]
    items: tuple[JsonExpr, ...]


JsonExpr = Compare | IsTest | BoolOp


@dataclass(frozen=True)
class Json:
    expr: JsonExpr


@dataclass(frozen=True)
class FieldCond:
    """One condition on a space-delimited field (the name written in it is informational)."""

    name: str
    op: Op
    value: Value


@dataclass(frozen=True)
class CondOp:
    op: Literal["&&", "||"]
    items: tuple[FieldExpr, ...]


FieldExpr = FieldCond | CondOp


@dataclass(frozen=True)
class Field:
    """A space-delimited field: ``...`` (ellipsis), a name with optional conditions, or unnamed (empty)."""

    kind: Literal["ellipsis", "named", "unnamed"]
    name: str = ""
    cond: FieldExpr | None = None


@dataclass(frozen=True)
class Delimited:
    fields: tuple[Field, ...] = field(default_factory=tuple)


Pattern = MatchAll | Terms | Regex | Json | Delimited
