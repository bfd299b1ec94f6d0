"""Differential checks: the generated predicates agree with a plain recursive interpreter of the same syntax
tree on random events (catches code-generation mistakes the example cases could miss)."""

from __future__ import annotations

import operator
import re
from typing import Any

import orjson
from corrtrace.alerts import PatternError, compile_pattern
from corrtrace.alerts.patterns import ast
from corrtrace.alerts.patterns.compiler import _text, resolve_all
from hypothesis import given, settings
from hypothesis import strategies as st

OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
SCALARS = (str, int, float, bool, type(None))


def _string_match(text: str, pattern: str) -> bool:
    lead, trail = pattern.startswith("*"), pattern.endswith("*") and len(pattern) > 1
    core = pattern[1 if lead else 0 : len(pattern) - 1 if trail else len(pattern)]
    if lead and trail:
        return core in text
    if lead:
        return text.endswith(core)
    if trail:
        return text.startswith(core)
    return text == core


def reference(node: ast.JsonExpr, obj: Any) -> bool:
    if isinstance(node, ast.BoolOp):
        results = [reference(item, obj) for item in node.items]
        return all(results) if node.op == "&&" else any(results)
    found = resolve_all(obj, node.selector.steps)
    if isinstance(node, ast.IsTest):
        if node.what == "not_exists":
            return not found
        target = {"null": None, "true": True, "false": False}[node.what]
        return any(v is target for v in found)
    value = node.value
    for v in found:
        if value.kind == "any":
            if node.op == "=" and type(v) in SCALARS:
                return True
            continue
        if value.kind == "number":
            if type(v) in (int, float) and OPS[node.op](v, value.number):
                return True
            continue
        text = _text(v)
        if text is None:
            continue
        if value.kind == "regex":
            assert value.regex is not None
            hit = re.search(value.regex.python, text, re.ASCII) is not None
        else:
            hit = _string_match(text, value.text)
        if hit == (node.op == "="):
            return True
    return False


LEAVES = st.sampled_from(
    [
        "$.a = 1",
        "$.a != 1",
        "$.a > 1",
        "$.a <= 2.5",
        "$.a = x",
        '$.a != "x"',
        "$.a = x*",
        "$.a = *y",
        '$.a = "*"',
        "$.a = %^x%",
        "$.a != %y%",
        "$.a IS NULL",
        "$.a IS TRUE",
        "$.a IS FALSE",
        "$.a NOT EXISTS",
        "$.b.c = x",
        "$.b.c >= 1",
        "$.b[0] = 1",
        "$.b[1] != x",
        "$.b[*] = x",
        "$.b.* = 1",
        "$.c[0].a = xy",
        "$.b.c NOT EXISTS",
    ]
)
VALUES = st.sampled_from([1, 2, 2.5, 0, "x", "xy", "yx", "1", True, False, None])


def _tree(depth: int) -> st.SearchStrategy[Any]:
    leaf = VALUES
    if depth == 0:
        return leaf
    inner = _tree(depth - 1)
    return st.one_of(leaf, st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3))


EVENTS = st.dictionaries(st.sampled_from("abc"), _tree(2), max_size=3)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    leaves = draw(st.lists(LEAVES, min_size=1, max_size=4))
    joiners = draw(st.lists(st.sampled_from(["&&", "||"]), min_size=len(leaves) - 1, max_size=len(leaves) - 1))
    text = leaves[0]
    for joiner, leaf in zip(joiners, leaves[1:], strict=True):
        text = f"({text}) {joiner} {leaf}" if draw(st.booleans()) else f"{text} {joiner} {leaf}"
    return "{ " + text + " }"


@settings(max_examples=400, deadline=None)
@given(patterns(), EVENTS)
def test_compiled_json_agrees_with_reference(pattern: str, event: dict[str, Any]) -> None:
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:  # the wildcard and regex quotas may reject a draw: documented limits
        assert "at most" in exc.reason
        return
    assert isinstance(compiled.tree, ast.Json)
    expected = reference(compiled.tree.expr, event)
    assert compiled.matches_parsed(event) is expected
    assert compiled.matches(orjson.dumps(event).decode()) is expected


def test_selector_keys_and_values_are_data_not_code() -> None:
    key = 'x"] or __import__("os").getpid() or d["'
    pattern = compile_pattern("{ $.['" + key + "'] = \"v') or print('p\" }")
    assert pattern.matches(orjson.dumps({key: "v') or print('p"}).decode())
    assert not pattern.matches(orjson.dumps({"x": "v"}).decode())
    source = pattern.matches_parsed.__corrtrace_source__  # type: ignore[attr-defined]
    assert repr(key) in source


# --- space-delimited ----------------------------------------------------------------------------------------


def _ref_tokens(line: str) -> list[str]:
    """Character-by-character reading of the documented rule (independent of the engine's regex)."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        closer = {"[": "]", '"': '"'}.get(line[i])
        if closer is not None:
            end = line.find(closer, i + 1)
            if end >= 0:
                out.append(line[i + 1 : end])
                i = end + 1
                continue
        end = line.find(" ", i)
        end = len(line) if end < 0 else end
        out.append(line[i:end])
        i = end
    return out


def _ref_number(text: str) -> float | None:
    return float(text) if re.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", text) else None


def _ref_cond(node: ast.FieldExpr, text: str) -> bool:
    if isinstance(node, ast.CondOp):
        results = [_ref_cond(item, text) for item in node.items]
        return all(results) if node.op == "&&" else any(results)
    value = node.value
    if value.kind == "any":
        return node.op == "="
    if value.kind == "number":
        number = _ref_number(text)
        if number is None:
            return {"=": text == value.text, "!=": text != value.text}.get(node.op, False)
        return bool(OPS[node.op](number, value.number))
    if value.kind == "regex":
        assert value.regex is not None
        return (re.search(value.regex.python, text, re.ASCII) is not None) == (node.op == "=")
    return _string_match(text, value.text) == (node.op == "=")


def ref_delimited(tree: ast.Delimited, line: str) -> bool:
    tokens = _ref_tokens(line)
    fields = list(tree.fields)
    if not fields:
        return True
    if any(f.kind == "ellipsis" for f in fields):
        cut = next(i for i, f in enumerate(fields) if f.kind == "ellipsis")
        before, after = fields[:cut], fields[cut + 1 :]
        if len(tokens) < len(before) + len(after):
            return False
        pairs = list(zip(before, tokens, strict=False)) + list(
            zip(after, tokens[len(tokens) - len(after) :], strict=True)
        )
    else:
        if len(tokens) != len(fields):
            return False
        pairs = list(zip(fields, tokens, strict=True))
    return all(f.cond is None or _ref_cond(f.cond, t) for f, t in pairs)


FIELD_CHOICES = st.sampled_from(
    [
        "a",
        "b=ERROR",
        "b!=ERROR",
        "c=4*",
        "c=*html*",
        "d>100",
        "d<=5.5",
        "e=200",
        "e!=200",
        "f=%^x\\d%",
        'g="GET /x"',
        "h=ERROR || h=WARN",
        "i=4* && i!=403",
        "j=*",
    ]
)
WORDS = st.sampled_from(
    [
        "ERROR",
        "WARN",
        "404",
        "403",
        "200",
        "5.5",
        "1e3",
        "x1",
        "x",
        "index.html",
        "-",
        "[10/Oct/2000:13:25:15 -0700]",
        '"GET /x"',
        '"GET /index.html HTTP/1.0"',
        "abc",
    ]
)


@st.composite
def delimited_patterns(draw: st.DrawFn) -> str:
    fields = draw(st.lists(FIELD_CHOICES, min_size=1, max_size=4, unique_by=lambda f: f[0]))
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), "...")
    return "[" + ", ".join(fields) + "]"


@settings(max_examples=400, deadline=None)
@given(delimited_patterns(), st.lists(WORDS, min_size=0, max_size=6))
def test_compiled_space_delimited_agrees_with_reference(pattern: str, words: list[str]) -> None:
    compiled = compile_pattern(pattern)
    assert isinstance(compiled.tree, ast.Delimited)
    line = " ".join(words)
    assert compiled.matches(line) is ref_delimited(compiled.tree, line), (pattern, line)
