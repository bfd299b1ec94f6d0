"""Parse a filter pattern into the syntax tree; every rejection names the position and the reason.

Dispatch is on the first non-blank character (``{`` JSON, ``[`` space-delimited, ``%`` regex, otherwise terms),
as in the AWS grammar (alerts/README.md, "Pattern forms and AWS limits").
"""

from __future__ import annotations

import re
from typing import Literal, cast

from corrtrace.alerts.patterns import ast
from corrtrace.alerts.patterns.errors import PatternError
from corrtrace.alerts.patterns.lexer import WORD_CHARS, Scanner
from corrtrace.alerts.patterns.regex import translate

MAX_PATTERN_LENGTH = 1024
MAX_REGEXES_PER_PATTERN = 2
MAX_WILDCARDS_PER_EXPRESSION = 3
# CloudWatch documents no nesting limit, only the 1,024-character one, which allows ~500 levels of parentheses:
# deep enough to exhaust the parser's and the compiler's stacks. 32 levels is far beyond any real pattern.
MAX_NESTING = 32
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME_CHARS = frozenset(WORD_CHARS | {"-"})
_BARE_JSON_VALUE = frozenset(WORD_CHARS | set(".*-+:/"))
_OPS = (">=", "<=", "!=", "=", "<", ">")
_NUMERIC_ONLY = frozenset({"<", ">", "<=", ">="})


def parse(text: str, *, allow_regex_space: bool = False) -> ast.Pattern:
    """Parse ``text``; raises ``PatternError``."""
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern is longer than {MAX_PATTERN_LENGTH} characters", MAX_PATTERN_LENGTH, text)
    sc = Scanner(text)
    sc.skip_ws()
    if sc.at_end():
        return ast.MatchAll()
    first = sc.peek()
    if first == "{":
        return _Json(sc, allow_regex_space).parse()
    if first == "[":
        return _Delimited(sc, allow_regex_space).parse()
    if first == "%":
        start, body = sc.read_regex_span()
        sc.skip_ws()
        if not sc.at_end():
            raise sc.error("a regex pattern must be the whole filter pattern; unexpected text after the closing '%'")
        return translate(body, start, text, allow_space=allow_regex_space)
    return _terms(sc)


def _terms(sc: Scanner) -> ast.Pattern:
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    quoted_blank = 0
    count = 0
    while True:
        sc.skip_ws()
        if sc.at_end():
            break
        prefix = sc.peek() if sc.peek() in "?-" else ""
        if prefix:
            sc.pos += 1
            if sc.at_end() or sc.peek() in " \t\r\n":
                raise sc.error(f"'{prefix}' must be written directly before its term (no space)")
        start = sc.pos
        if sc.peek() == '"':
            term = sc.read_quoted()
            if not term.strip():
                quoted_blank += 1
        else:
            term = sc.read_while(WORD_CHARS)
            if not term:
                raise sc.error(
                    f"unexpected character {sc.peek()!r}: a term containing characters other than letters, "
                    "digits and '_' must be enclosed in double quotes"
                )
        if not sc.at_end() and sc.peek() not in " \t\r\n":
            raise sc.error(
                f"unexpected character {sc.peek()!r} after term starting at position {start}: a term containing "
                "characters other than letters, digits and '_' must be enclosed in double quotes"
            )
        count += 1
        {"?": optional, "-": excluded, "": required}[prefix].append(term)
    if count == quoted_blank:  # `""`, `" "`: match every event
        return ast.MatchAll()
    return ast.Terms(tuple(required), tuple(optional), tuple(excluded))


def _value(sc: Scanner, op: str, terminators: str, bare_allowed: frozenset[str] | None, allow_space: bool) -> ast.Value:
    sc.skip_ws()
    start = sc.pos
    if sc.at_end():
        raise sc.error(f"expected a value after {op!r}")
    ch = sc.peek()
    if ch == '"':
        text = sc.read_quoted()
        if op in _NUMERIC_ONLY:
            raise sc.error(f"operator {op!r} needs a number, not a string", start)
        return ast.Value("any" if text == "*" else "string", text)
    if ch == "%":
        if op in _NUMERIC_ONLY:
            raise sc.error(f"operator {op!r} needs a number, not a regular expression", start)
        body_start, body = sc.read_regex_span()
        return ast.Value("regex", body, regex=translate(body, body_start, sc.text, allow_space=allow_space))
    while not sc.at_end() and sc.peek() not in terminators and sc.peek() not in " \t\r\n":
        if sc.peek(2) in ("&&", "||"):
            break
        sc.pos += 1
    text = sc.text[start : sc.pos]
    if not text:
        raise sc.error(f"expected a value after {op!r}")
    if NUMBER_RE.fullmatch(text):
        return ast.Value("number", text, number=float(text))
    if op in _NUMERIC_ONLY:
        raise sc.error(f"operator {op!r} needs a number, got {text!r}", start)
    if bare_allowed is not None:
        for i, c in enumerate(text):
            if c not in bare_allowed:
                raise sc.error(
                    f"character {c!r} in value {text!r} is not allowed unquoted; enclose the value in double quotes",
                    start + i,
                )
    return ast.Value("any" if set(text) == {"*"} else "string", text)


def _op(sc: Scanner) -> str:
    sc.skip_ws()
    for op in _OPS:
        if sc.accept(op):
            return op
    found = sc.peek() or "end of pattern"
    raise sc.error(f"expected a comparison operator (=, !=, <, >, <=, >=) but found {found!r}")


class _Json:
    def __init__(self, sc: Scanner, allow_space: bool) -> None:
        self.sc = sc
        self.allow_space = allow_space
        self.regexes = 0
        self.wildcards = 0
        self.depth = 0

    def parse(self) -> ast.Json:
        sc = self.sc
        sc.expect("{", "'{'")
        expr = self.parse_or()
        sc.skip_ws()
        if sc.at_end():
            raise sc.error("missing closing '}' of the JSON pattern")
        if not sc.accept("}"):
            raise sc.error(f"expected '&&', '||' or '}}' but found {self._word_or_char()!r}")
        sc.skip_ws()
        if not sc.at_end():
            raise sc.error("unexpected text after the closing '}'")
        return ast.Json(expr)

    def _word_or_char(self) -> str:
        sc = self.sc
        word = re.match(r"[A-Za-z]+", sc.text[sc.pos :])
        return word.group(0) if word else sc.peek()

    def parse_or(self) -> ast.JsonExpr:
        items = [self.parse_and()]
        while True:
            self.sc.skip_ws()
            if not self.sc.accept("||"):
                break
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else ast.BoolOp("||", tuple(items))

    def parse_and(self) -> ast.JsonExpr:
        items = [self.parse_atom()]
        while True:
            self.sc.skip_ws()
            if not self.sc.accept("&&"):
                break
            items.append(self.parse_atom())
        return items[0] if len(items) == 1 else ast.BoolOp("&&", tuple(items))

    def parse_atom(self) -> ast.JsonExpr:
        sc = self.sc
        sc.skip_ws()
        if sc.accept("("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise sc.error(f"parentheses nested deeper than {MAX_NESTING} levels", sc.pos - 1)
            inner = self.parse_or()
            sc.skip_ws()
            sc.expect(")", "')'")
            self.depth -= 1
            return inner
        if sc.peek() != "$":
            found = sc.peek() or "end of pattern"
            raise sc.error(f"expected a selector starting with '$' or '(' but found {found!r}")
        selector = self.selector()
        sc.skip_ws()
        kw_pos = sc.pos
        word = re.match(r"[A-Za-z]+", sc.text[sc.pos :])
        if word:
            kw = word.group(0)
            if kw == "IS":
                sc.pos += 2
                sc.skip_ws()
                what = re.match(r"[A-Za-z]+", sc.text[sc.pos :])
                target = what.group(0) if what else ""
                if target in ("NULL", "TRUE", "FALSE"):
                    sc.pos += len(target)
                    return ast.IsTest(selector, cast("Literal['null', 'true', 'false']", target.lower()))
                if target == "NOT":
                    raise sc.error("'IS NOT' is not supported; use '!=' or NOT EXISTS")
                raise sc.error("'IS' must be followed by NULL, TRUE or FALSE")
            if kw == "NOT":
                sc.pos += 3
                sc.skip_ws()
                if sc.accept("EXISTS"):
                    return ast.IsTest(selector, "not_exists")
                raise sc.error("'NOT' must be followed by EXISTS")
            if kw == "EXISTS":
                raise sc.error("'EXISTS' is not supported; use '= *' to test that a field is present", kw_pos)
            raise sc.error(f"expected a comparison operator, IS or NOT EXISTS but found {kw!r}", kw_pos)
        op = _op(sc)
        value = _value(sc, op, ")}", _BARE_JSON_VALUE, self.allow_space)
        if value.kind == "regex":
            self.regexes += 1
            if self.regexes > MAX_REGEXES_PER_PATTERN:
                raise sc.error(f"a pattern may contain at most {MAX_REGEXES_PER_PATTERN} regular expressions")
        return ast.Compare(selector, cast("ast.Op", op), value)

    def selector(self) -> ast.Selector:
        sc = self.sc
        start = sc.pos
        sc.expect("$", "'$'")
        steps: list[ast.Step] = []
        while not sc.at_end():
            step_pos = sc.pos
            if sc.accept(".*"):
                steps.append(ast.Step("any_key"))
            elif sc.accept(".["):
                steps.append(self._bracket(step_pos, quoted_only=True))
            elif sc.accept("."):
                name = sc.read_while(_NAME_CHARS)
                if not name:
                    raise sc.error("expected a property name after '.' (letters, digits, '-' and '_')")
                steps.append(ast.Step("key", key=name))
            elif sc.accept("["):
                steps.append(self._bracket(step_pos, quoted_only=False))
            else:
                break
        if not steps:
            raise sc.error("a selector needs at least one property, e.g. $.level", start)
        selector = ast.Selector(sc.text[start : sc.pos], tuple(steps))
        if selector.wildcards > 1:
            raise sc.error("a property selector may contain at most one wildcard ([*] or .*)", start)
        self.wildcards += selector.wildcards
        if self.wildcards > MAX_WILDCARDS_PER_EXPRESSION:
            raise sc.error(
                f"a JSON pattern may contain at most {MAX_WILDCARDS_PER_EXPRESSION} wildcard selectors", start
            )
        return selector

    def _bracket(self, step_pos: int, *, quoted_only: bool) -> ast.Step:
        sc = self.sc
        if sc.peek() in ("'", '"'):
            quote = sc.peek()
            end = sc.text.find(quote, sc.pos + 1, sc.end)
            if end < 0:
                raise sc.error("unterminated quoted key in selector")
            key = sc.text[sc.pos + 1 : end]
            sc.pos = end + 1
            sc.expect("]", "']'")
            return ast.Step("key", key=key)
        if quoted_only:
            raise sc.error("expected a quoted key after '.[', e.g. $.['cluster.name']", step_pos)
        if sc.accept("*]"):
            return ast.Step("any_index")
        digits = sc.read_while("0123456789")
        if not digits:
            raise sc.error("expected an array index, '*' or a quoted key inside '[ ]'")
        sc.expect("]", "']'")
        return ast.Step("index", index=int(digits))


class _Delimited:
    def __init__(self, sc: Scanner, allow_space: bool) -> None:
        self.sc = sc
        self.allow_space = allow_space
        self.regexes = 0

    def parse(self) -> ast.Delimited:
        sc = self.sc
        sc.expect("[", "'['")
        sc.skip_ws()
        if sc.accept("]"):
            self._end()
            return ast.Delimited(())
        fields: list[ast.Field] = []
        ellipsis_at: int | None = None
        while True:
            sc.skip_ws()
            field_pos = sc.pos
            field = self.field()
            if field.kind == "ellipsis":
                if ellipsis_at is not None:
                    raise sc.error("only one '...' is allowed in a space-delimited pattern", field_pos)
                ellipsis_at = field_pos
            fields.append(field)
            sc.skip_ws()
            if sc.accept(","):
                continue
            if sc.accept("]"):
                break
            if sc.at_end():
                raise sc.error("missing closing ']' of the space-delimited pattern")
            raise sc.error(f"expected ',' or ']' but found {sc.peek()!r}")
        self._end()
        names = [f.name for f in fields if f.kind == "named"]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise sc.error(f"field name {dup!r} is used twice", 0)
        return ast.Delimited(tuple(fields))

    def _end(self) -> None:
        self.sc.skip_ws()
        if not self.sc.at_end():
            raise self.sc.error("unexpected text after the closing ']'")

    def field(self) -> ast.Field:
        sc = self.sc
        if sc.peek() in (",", "]"):
            return ast.Field("unnamed")
        if sc.accept("..."):
            return ast.Field("ellipsis")
        name = sc.read_while(WORD_CHARS)
        if not name:
            raise sc.error(f"expected a field name, '...' or ',' but found {sc.peek() or 'end of pattern'!r}")
        sc.skip_ws()
        if sc.peek() in (",", "]") or sc.at_end():
            return ast.Field("named", name)
        return ast.Field("named", name, self.cond_or(name))

    def cond_or(self, name: str) -> ast.FieldExpr:
        items = [self.cond_and(name)]
        while True:
            self.sc.skip_ws()
            if not self.sc.accept("||"):
                break
            items.append(self.cond_and(None))
        return items[0] if len(items) == 1 else ast.CondOp("||", tuple(items))

    def cond_and(self, name: str | None) -> ast.FieldExpr:
        items = [self.cond(name)]
        while True:
            self.sc.skip_ws()
            if not self.sc.accept("&&"):
                break
            items.append(self.cond(None))
        return items[0] if len(items) == 1 else ast.CondOp("&&", tuple(items))

    def cond(self, name: str | None) -> ast.FieldCond:
        sc = self.sc
        if name is None:
            sc.skip_ws()
            name = sc.read_while(WORD_CHARS)
            if not name:
                raise sc.error("expected a field name after '&&' or '||'")
        op = _op(sc)
        value = _value(sc, op, ",]", None, self.allow_space)
        if value.kind == "regex":
            self.regexes += 1
            if self.regexes > MAX_REGEXES_PER_PATTERN:
                raise sc.error(f"a pattern may contain at most {MAX_REGEXES_PER_PATTERN} regular expressions")
        return ast.FieldCond(name, cast("ast.Op", op), value)
