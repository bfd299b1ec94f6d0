"""Compile a parsed pattern into a specialised Python predicate.

Each pattern becomes the source of one small function (constants embedded with ``repr`` or bound by name,
never user text as code) that is ``exec``-ed once. The result runs at the speed of a hand-written check.
JSON patterns evaluate on an already parsed object, so a log line parsed once serves every JSON alert.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import orjson
from corrtrace.alerts.patterns import ast
from corrtrace.alerts.patterns.parser import NUMBER_RE, parse
from corrtrace.alerts.patterns.regex import searcher
from corrtrace.alerts.patterns.tokens import tokenize, tokenize_rest, unwrap


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_NUM = (int, float)
_SCALAR = frozenset({str, int, float, bool, type(None)})
_LOOKUP_ERRORS = (KeyError, TypeError, IndexError)
Kind = Literal["all", "terms", "regex", "json", "delimited"]
DelimitedMode = Literal["exact", "rest"]


def _text(value: Any) -> str | None:
    """A value node's string form for string comparisons; None for non-comparable values."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if cls is int or cls is float:
        return str(value) if cls is int or not value.is_integer() else repr(value)
    return None


def _num(text: str) -> float | None:
    """The number a field spells, per the pattern grammar (no nan/inf/underscores/hex)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if value - value != 0 or "_" in text or text[-1] in "yYnNfF":  # inf, nan, 1_000, "infinity"
        return None
    return value


def resolve_all(root: Any, steps: tuple[ast.Step, ...]) -> list[Any]:
    """Every value a (possibly wildcard) selector reaches; empty when nothing is there."""
    current = [root]
    for step in steps:
        nxt: list[Any] = []
        for node in current:
            if step.kind == "key":
                if node.__class__ is dict and step.key in node:
                    nxt.append(node[step.key])
            elif step.kind == "index":
                if node.__class__ is list and step.index < len(node):
                    nxt.append(node[step.index])
            elif step.kind == "any_index":
                if node.__class__ is list:
                    nxt.extend(node)
            elif node.__class__ is dict:
                nxt.extend(node.values())
        current = nxt
    return current


def select(root: Any, selector: ast.Selector) -> Any:
    """The single value at a wildcard-free selector, or ``MISSING``."""
    found = resolve_all(root, selector.steps)
    return found[0] if found else MISSING


class _Gen:
    """Collects helper functions and bound constants while building one predicate's source."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "_M": MISSING,
            "_NUM": _NUM,
            "_SCALAR": _SCALAR,
            "_s": _text,
            "_num": _num,
            "_LE": _LOOKUP_ERRORS,
            "_u": unwrap,
            "_Q": '["',
        }
        self.defs: list[str] = []
        self.counter = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def bind(self, prefix: str, value: Any) -> str:
        name = self.name(prefix)
        self.ns[name] = value
        return name

    def finish(self, body: str, fname: str = "_pred") -> Callable[..., bool]:
        source = "\n".join([*self.defs, body])
        exec(compile(source, f"<filter-pattern {fname}>", "exec"), self.ns)
        fn: Callable[..., bool] = self.ns[fname]
        fn.__corrtrace_source__ = source  # type: ignore[attr-defined]
        return fn

    # --- leaves shared by JSON and space-delimited conditions ---------------------------------------
    def string_cond(self, x: str, op: str, value: ast.Value, *, numeric_fields: bool) -> str:
        """Condition on ``x`` (an expression) for a string, wildcard, regex or number value."""
        if value.kind == "any":
            return f"({x}).__class__ in _SCALAR" if op == "=" else "False"
        if value.kind == "regex":
            assert value.regex is not None
            found = self.bind("_r", searcher(value.regex))
            t = self.name("_t")
            hit = "" if op == "=" else "not "
            return f"((({t} := _s({x})) is not None) and {hit}{found}({t}))"
        if value.kind == "number":
            c = self.bind("_c", value.number)
            t = self.name("_t")
            if numeric_fields:  # space-delimited: the field is text
                if op in ("=", "!="):
                    pyop = "==" if op == "=" else "!="
                    lit = repr(value.text)
                    return f"(({t} {pyop} {c}) if ({t} := _num({x})) is not None else (({x}) {pyop} {lit}))"
                return f"((({t} := _num({x})) is not None) and {t} {op} {c})"
            pyop = "==" if op == "=" else op
            return f"((({t} := {x}).__class__ in _NUM) and {t} {pyop} {c})"
        text = value.text
        lead, trail = text.startswith("*"), text.endswith("*") and len(text) > 1
        core = text[1 if lead else 0 : len(text) - 1 if trail else len(text)]
        lit = repr(core)
        t = self.name("_t")
        src = f"_s({x})" if not numeric_fields else x
        if lead and trail:
            test = f"{lit} in {t}"
        elif lead:
            test = f"{t}.endswith({lit})"
        elif trail:
            test = f"{t}.startswith({lit})"
        elif op == "=" and not numeric_fields and not NUMBER_RE.fullmatch(core):
            return f"(({x}) == {lit})"
        else:
            test = f"{t} == {lit}"
        if op == "!=":
            test = f"not ({test})"
        return f"((({t} := {src}) is not None) and {test})"


def _compile_json(tree: ast.Json) -> Callable[[Any], bool]:
    gen = _Gen()

    def path(selector: ast.Selector) -> tuple[str, bool]:
        """(expression fetching the value or candidate list, is_wildcard)."""
        fname = gen.name("_p")
        if selector.wildcards:
            gen.ns[fname] = partial(resolve_all, steps=selector.steps)
            return f"{fname}(d)", True
        lines = [f"def {fname}(d):", "    try:"]
        for step in selector.steps:
            if step.kind == "key":
                lines.append(f"        d = d[{step.key!r}]")
            else:
                lines.append("        if d.__class__ is not list: return _M")
                lines.append(f"        d = d[{step.index}]")
        lines += ["    except _LE:", "        return _M", "    return d"]
        gen.defs.append("\n".join(lines))
        return f"{fname}(d)", False

    def leaf(x: str, node: ast.Compare | ast.IsTest) -> str:
        if isinstance(node, ast.IsTest):
            return {
                "null": f"({x}) is None",
                "true": f"({x}) is True",
                "false": f"({x}) is False",
                "not_exists": f"({x}) is _M",
            }[node.what]
        return gen.string_cond(x, node.op, node.value, numeric_fields=False)

    def expr(node: ast.JsonExpr) -> str:
        if isinstance(node, ast.BoolOp):
            joiner = " and " if node.op == "&&" else " or "
            return "(" + joiner.join(expr(item) for item in node.items) + ")"
        x, wildcard = path(node.selector)
        if not wildcard:
            return leaf(x, node)
        if isinstance(node, ast.IsTest) and node.what == "not_exists":
            return f"(not {x})"
        wname = gen.name("_w")
        gen.defs.append(f"def {wname}(v):\n    return {leaf('v', node)}")
        return f"any(map({wname}, {x}))"

    items = tree.expr.items if isinstance(tree.expr, ast.BoolOp) and tree.expr.op == "&&" else (tree.expr,)
    lines = ["def _pred(d):"]
    for item in items:
        if isinstance(item, ast.Compare | ast.IsTest) and all(st.kind == "key" for st in item.selector.steps):
            # inline lookup: a failed subscript (absent key, wrong type) means the field is missing
            chain = "".join(f"[{st.key!r}]" for st in item.selector.steps)
            lines += ["    try:", f"        _v = d{chain}", "    except _LE:", "        _v = _M"]
            lines.append(f"    if not ({leaf('_v', item)}): return False")
        else:
            lines.append(f"    if not ({expr(item)}): return False")
    lines.append("    return True")
    body = "\n".join(lines)
    return gen.finish(body)


def _field_layout(fields: tuple[ast.Field, ...]) -> tuple[list[tuple[int, ast.Field]], int, bool]:
    """Token index of each non-ellipsis field (negative after ``...``), minimum token count, has ellipsis."""
    cut = next((i for i, f in enumerate(fields) if f.kind == "ellipsis"), None)
    if cut is None:
        return list(enumerate(fields)), len(fields), False
    before = list(enumerate(fields[:cut]))
    after_fields = fields[cut + 1 :]
    after = [(i - len(after_fields), f) for i, f in enumerate(after_fields)]
    return before + after, len(fields) - 1, True


def _compile_delimited(tree: ast.Delimited, mode: DelimitedMode) -> Callable[[str], bool]:
    gen = _Gen()
    if not tree.fields:
        return lambda message: True
    layout, minimum, ellipsis = _field_layout(tree.fields)
    rest = mode == "rest" and not ellipsis
    gen.ns["_tok"] = partial(tokenize_rest, count=minimum) if rest else tokenize
    lines = ["def _pred(m):", "    t = _tok(m)"]
    lines.append(f"    if len(t) {'<' if ellipsis else '!='} {minimum}: return False")

    def cond(x: str, node: ast.FieldExpr) -> str:
        if isinstance(node, ast.CondOp):
            joiner = " and " if node.op == "&&" else " or "
            return "(" + joiner.join(cond(x, item) for item in node.items) + ")"
        return gen.string_cond(x, node.op, node.value, numeric_fields=True)

    for index, field in layout:
        if field.cond is None:
            continue
        var = gen.name("_f")
        lines.append(f"    {var} = t[{index}]")
        lines.append(f"    if {var}[0] in _Q: {var} = _u({var})")
        lines.append(f"    if not {cond(var, field.cond)}: return False")
    lines.append("    return True")
    return gen.finish("\n".join(lines))


def _compile_terms(tree: ast.Terms) -> Callable[[str], bool]:
    parts = [f"{t!r} in m" for t in tree.required] + [f"{t!r} not in m" for t in tree.excluded]
    if not parts:  # only `?` terms: any of them
        parts = ["(" + " or ".join(f"{t!r} in m" for t in tree.optional) + ")"]
    return _Gen().finish("def _pred(m):\n    return " + " and ".join(parts))


def _parse_json(message: str | bytes) -> Any:
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError:
        return MISSING


class FilterPattern:
    """A compiled filter pattern.

    ``matches(message)`` tests a raw log message; ``matches_parsed(obj)`` tests an already parsed JSON event
    (JSON patterns only); ``extract(message)`` returns TestMetricFilter's ``extractedValues`` or None.
    """

    matches: Callable[[str], bool]
    matches_parsed: Callable[[Any], bool]

    def __init__(self, text: str, *, delimited_mode: DelimitedMode = "exact", allow_regex_space: bool = False):
        self.text = text
        self.delimited_mode = delimited_mode
        self.tree: ast.Pattern = parse(text, allow_regex_space=allow_regex_space)
        tree = self.tree
        self.kind: Kind
        if isinstance(tree, ast.MatchAll):
            self.kind = "all"
            self.matches = _always
            self.matches_parsed = _always
        elif isinstance(tree, ast.Terms):
            self.kind = "terms"
            self.matches = _compile_terms(tree)
            self.matches_parsed = _never_parsed
        elif isinstance(tree, ast.Regex):
            self.kind = "regex"
            self.matches = searcher(tree)
            self.matches_parsed = _never_parsed
        elif isinstance(tree, ast.Json):
            self.kind = "json"
            pred = _compile_json(tree)
            self.matches_parsed = pred
            self.matches = lambda m, _p=pred: (obj := _parse_json(m)) is not MISSING and _p(obj)  # type: ignore[misc]
        else:
            self.kind = "delimited"
            self.matches = _compile_delimited(tree, delimited_mode)
            self.matches_parsed = _never_parsed

    def __repr__(self) -> str:
        return f"FilterPattern({self.text!r})"

    @property
    def is_json(self) -> bool:
        return self.kind == "json"

    def test(self, message: str, parsed: Any = MISSING) -> bool:
        """Match ``message``; a JSON pattern uses ``parsed`` when the caller already parsed the line."""
        if self.kind == "json" and parsed is not MISSING:
            return self.matches_parsed(parsed)
        return self.matches(message)

    def field_keys(self) -> list[str]:
        """The ``$name`` keys this pattern can extract (named space-delimited fields)."""
        if not isinstance(self.tree, ast.Delimited):
            return []
        return [f"${f.name}" for f in self.tree.fields if f.kind == "named"]

    def extract(self, message: str, parsed: Any = MISSING) -> dict[str, str] | None:
        """None when ``message`` does not match; else the extracted values (``{}`` unless space-delimited)."""
        if not self.test(message, parsed):
            return None
        if not isinstance(self.tree, ast.Delimited) or not self.tree.fields:
            return {}
        fields = self.tree.fields
        layout, minimum, ellipsis = _field_layout(fields)
        if self.delimited_mode == "rest" and not ellipsis:
            tokens = tokenize_rest(message, minimum)
        else:
            tokens = tokenize(message)
        n = len(tokens)
        out: dict[str, str] = {}
        named: dict[int, str] = {}
        for index, field in layout:
            position = index if index >= 0 else n + index
            if field.kind == "named":
                named[position] = field.name
        for position in range(n):
            key = f"${named[position]}" if position in named else f"${position + 1}"
            out[key] = unwrap(tokens[position])
        return out


def _always(_: Any) -> bool:
    return True


def _never_parsed(_: Any) -> bool:
    raise TypeError("matches_parsed() is for JSON patterns; use matches(message) for this pattern")


def compile_pattern(
    text: str, *, delimited_mode: DelimitedMode = "exact", allow_regex_space: bool = False
) -> FilterPattern:
    """Parse and compile a CloudWatch Logs filter pattern; raises ``PatternError`` naming position and reason.

    ``delimited_mode``: "exact" (a space-delimited pattern without ``...`` needs exactly as many words as
    fields, the 2020 doc reading and the default) or "rest" (the last field takes the rest of the line).
    """
    return FilterPattern(text, delimited_mode=delimited_mode, allow_regex_space=allow_regex_space)
