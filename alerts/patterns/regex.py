"""CloudWatch's regex dialect: check the allowed character set, then translate to Python ``re``.

Allowed: ASCII letters and digits, the symbols ``: _ # = @ / ; , -``, the operators ``^ $ ? [ ] { } | \\ * + .``,
escapes ``\\d \\D \\s \\S \\w \\W \\xhh``. Groups ``( )`` and every other character are rejected.
``\\s`` is tab, space and newline, as the AWS page defines it.
"""

from __future__ import annotations

import re

from corrtrace.alerts.patterns.ast import Regex
from corrtrace.alerts.patterns.errors import PatternError

_SYMBOLS = frozenset(":_#=@/;,-")
_OPERATORS = frozenset("^$?[]{}|\\*+.")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ALLOWED = _ALNUM | _SYMBOLS | _OPERATORS
_HEX = frozenset("0123456789abcdefABCDEF")


def _check_chars(body: str, offset: int, pattern: str, allow_space: bool) -> None:
    for i, ch in enumerate(body):
        if ch in _ALLOWED or (allow_space and ch == " "):
            continue
        if ch in "()":
            raise PatternError(
                f"regex operator {ch!r} is not supported (no groups); write \\x28 or \\x29 to match it",
                offset + i,
                pattern,
            )
        shown = ch if ch.isprintable() and ch.isascii() else f"U+{ord(ch):04X}"
        raise PatternError(
            f"regex character {shown!r} is not supported; use \\xhh for characters outside the allowed set",
            offset + i,
            pattern,
        )


def translate(body: str, offset: int = 0, pattern: str = "", *, allow_space: bool = False) -> Regex:
    """Validate ``body`` (the text between the ``%`` signs) and build its Python equivalent."""
    if not body:
        raise PatternError("empty regular expression", offset, pattern)
    _check_chars(body, offset, pattern, allow_space)
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise PatternError("regex ends with a lone backslash", offset + i, pattern)
            nxt = body[i + 1]
            if nxt in "dDwW":
                out.append("\\" + nxt)
            elif nxt == "s":
                out.append("\\t \\n" if in_class else "[\\t \\n]")
            elif nxt == "S":
                out.append("\\S" if in_class else "[^\\t \\n]")
            elif nxt == "x":
                hexpart = body[i + 2 : i + 4]
                if len(hexpart) != 2 or not set(hexpart) <= _HEX:
                    raise PatternError("\\x needs two hex digits", offset + i, pattern)
                out.append("\\x" + hexpart)
                i += 2
            elif nxt in _SYMBOLS or nxt in _OPERATORS:
                out.append("\\" + nxt)
            else:
                raise PatternError(f"unsupported regex escape \\{nxt}", offset + i, pattern)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            i += 1
            if i < len(body) and body[i] == "^":
                out.append("^")
                i += 1
            if i < len(body) and body[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if ch == "]" and in_class:
            in_class = False
        elif ch == " ":
            out.append("\\ ")
            i += 1
            continue
        out.append(ch)
        i += 1
    python = "".join(out)
    try:
        re.compile(python, re.ASCII)
    except re.error as exc:
        pos = offset + (exc.pos or 0) if exc.pos is not None and exc.pos <= len(body) else offset
        raise PatternError(f"invalid regular expression: {exc.msg}", pos, pattern) from None
    return Regex(source=body, python=python)
