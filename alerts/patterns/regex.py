"""CloudWatch's regex dialect: check the allowed character set, translate, and run it in linear time.

Allowed: ASCII letters and digits, the symbols ``: _ # = @ / ; , -``, the operators ``^ $ ? [ ] { } | \\ * + .``,
escapes ``\\d \\D \\s \\S \\w \\W \\xhh``. Groups ``( )`` and every other character are rejected.
``\\s`` is tab, space and newline, as the AWS page defines it.

The dialect has no groups and no back-references, so it is a regular language: it runs on RE2 (google-re2),
whose time is linear in the event's length. A log line is untrusted input and the alert engine reads every
service's logs, so a backtracking engine here would be a denial of service (see alerts/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import re2
from corrtrace.alerts.patterns.ast import Regex
from corrtrace.alerts.patterns.errors import PatternError

_SYMBOLS = frozenset(":_#=@/;,-")
_OPERATORS = frozenset("^$?[]{}|\\*+.")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ALLOWED = _ALNUM | _SYMBOLS | _OPERATORS
_HEX = frozenset("0123456789abcdefABCDEF")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors become one PatternError line, not a C++ log line on stderr
_RE2_OPTIONS.never_capture = True  # the dialect has no groups


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
            elif nxt == "_":
                out.append("_")  # RE2 rejects escaped word characters
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
        elif ch == "{" and not in_class and body[i + 1 : i + 2] == ",":
            out.append("{0")  # `{,n}` is `{0,n}` (as in Python's re); RE2 would read it as literal text
            i += 1
            continue
        elif ch == " ":
            out.append("\\x20")
            i += 1
            continue
        out.append(ch)
        i += 1
    python = "".join(out)
    try:
        re.compile(python, re.ASCII)  # parse only: its errors carry a position, RE2's do not
    except re.error as exc:
        pos = offset + (exc.pos or 0) if exc.pos is not None and exc.pos <= len(body) else offset
        raise PatternError(f"invalid regular expression: {exc.msg}", pos, pattern) from None
    try:
        re2.compile(python, _RE2_OPTIONS)
    except re2.error as exc:  # e.g. a repeat count over RE2's 1000
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"invalid regular expression: {reason}", offset, pattern) from None
    return Regex(source=body, python=python)


def searcher(regex: Regex) -> Callable[[str], bool]:
    """Whether the translated regex occurs in a text, in time linear in the text.

    Two costs are cut: a text without the literal every match must contain is refused by ``str.__contains__``
    before RE2 runs (most log lines, for most alert patterns); and RE2 is called through its compiled object's
    ``Match``, skipping the wrapper's per-call position bookkeeping that a yes/no answer does not need.
    """
    compiled = re2.compile(regex.python, _RE2_OPTIONS)
    raw_match = getattr(getattr(compiled, "_regexp", None), "Match", None)
    if raw_match is None:  # another google-re2 layout: the public API, slower but the same answer

        def found(text: str) -> bool:
            return compiled.search(text) is not None

    else:
        unanchored = re2._Anchor.UNANCHORED
        missing = (-1, -1)

        def found(text: str) -> bool:
            data = text.encode("utf-8", "surrogatepass")
            return bool(raw_match(unanchored, data, 0, len(data))[0] != missing)

    literal = required_literal(regex.source)
    if not literal:
        return found
    return lambda text: literal in text and found(text)


_QUANTIFIERS = frozenset("?*+{")


def _skip_class(body: str, i: int) -> int:
    """The index after the character class that starts at ``body[i] == "["``."""
    i += 1
    if body[i : i + 1] == "^":
        i += 1
    if body[i : i + 1] == "]":
        i += 1
    while i < len(body) and body[i] != "]":
        i += 2 if body[i] == "\\" else 1
    return i + 1


def required_literal(body: str) -> str:
    """The longest run of characters that every match of ``body`` (CloudWatch's dialect) contains; "" when the
    regex has an alternation or no such run."""
    if "|" in body:
        return ""
    best, run, i = "", "", 0
    while i < len(body):
        ch = body[i]
        literal = ""
        if ch == "\\":
            nxt = body[i + 1 : i + 2]
            literal = nxt if nxt in _SYMBOLS or nxt in _OPERATORS else ""
            end = i + (4 if nxt == "x" else 2)
        elif ch == "[":
            end = _skip_class(body, i)
        elif ch in _ALNUM or ch in _SYMBOLS or ch == " ":
            literal, end = ch, i + 1
        else:  # . ^ $ or a stray quantifier
            end = i + 1
        quantifier = body[end : end + 1]
        if quantifier == "{":
            close = body.find("}", end)
            bounds = body[end + 1 : close if close > 0 else len(body)]
            optional = bounds[:1] in ("", ",", "0")
            after = close + 1 if close > 0 else len(body)
        else:
            optional = quantifier in ("?", "*")
            after = end + (1 if quantifier in _QUANTIFIERS else 0)
        if literal and not optional:
            run += literal
        if not literal or quantifier in _QUANTIFIERS:
            best, run = max(best, run, key=len), ""
        i = after
    return max(best, run, key=len)
