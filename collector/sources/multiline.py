"""Join the lines of one record (a Python traceback, a Java stack trace, a user's rule) before parsing.

A source wrapper: lines that are not JSON objects are held per file until the next line shows whether it
continues them; JSON object lines are never joined. A record is only handed on when complete (the next record
began, ``flush_timeout`` passed with nothing new, or the source is at its end), so the checkpoint, which advances
to the end of the last record shipped, never lands inside a record: after a crash it is re-read whole.
See ``collector/README.md``, "Multiline records".
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from corrtrace.collector.parsers import JoinedLines, LineFormat
from corrtrace.collector.record import default_format
from corrtrace.collector.sources.base import RawLine

from corrtrace.config import shown

BUILTIN_RULES = ("python", "java")


class _Open:
    """A record being joined: its lines so far and the rules' state."""

    __slots__ = ("end", "lines", "nbytes", "prev", "py", "start", "truncated", "updated")

    def __init__(self, start: int, end: int, line: bytes) -> None:
        self.start, self.end, self.lines, self.nbytes = start, end, [line], len(line)
        self.prev = line
        self.py = 0  # python rule: 0 outside a traceback, 1 in its frames, 2 after its exception line
        self.truncated = False
        self.updated = time.monotonic()


class Rule(Protocol):
    def continues(self, record: _Open, line: bytes) -> bool: ...


_PY_CHAIN = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)


class PythonRule:
    """``Traceback (most recent call last):``, its indented frames, the exception line, chained tracebacks."""

    def continues(self, record: _Open, line: bytes) -> bool:
        if line.startswith((b"Traceback (most recent call last):", b"Exception Group Traceback")):
            record.py = 1
            return True
        if record.py == 1:
            if line[:1] in (b" ", b"\t"):
                return True
            record.py = 2  # the exception line ends the frames
            return True
        return record.py == 2 and line.startswith(_PY_CHAIN)


_JAVA_FRAME = re.compile(rb"[ \t]*(?:at [^ \t]|\.\.\. \d+ (?:more|common frames omitted)|Caused by: |Suppressed: )")
_JAVA_HEADER = re.compile(
    rb"(?:Exception in thread \"|(?:[A-Za-z_$][\w$]*\.)+[\w$]*"
    rb"(?:Exception|Error|Throwable)(?::|$))"
)


class JavaRule:
    """``\\tat ...`` frames, ``... n more``, ``Caused by:``/``Suppressed:``, and the exception line right under
    a log line (logback's ``%ex`` after the message)."""

    def continues(self, record: _Open, line: bytes) -> bool:
        if _JAVA_FRAME.match(line) is not None:
            return True
        return len(record.lines) == 1 and _JAVA_HEADER.match(line, 0, 1024) is not None


@dataclass
class PatternRule:
    """Filebeat's ``multiline.pattern``/``negate``/``match``: with ``after``, a line whose match (inverted by
    ``negate``) is true joins the record before it; with ``before``, the line after such a line joins it."""

    pattern: str
    negate: bool = False
    match: str = "after"
    regex: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.match not in ("after", "before"):
            raise ValueError(f"multiline.match: expected after or before, got {shown(self.match)}")
        import re2

        options = re2.Options()
        options.log_errors = False
        try:
            self.regex = re2.compile(self.pattern.encode(), options)
        except re2.error as exc:
            raise ValueError(f"multiline.pattern: not a valid regular expression: {self.pattern[:60]!r}") from exc

    def continues(self, record: _Open, line: bytes) -> bool:
        probe = line if self.match == "after" else record.prev
        return (self.regex.search(probe) is not None) != self.negate


def build_rules(spec: Any) -> list[Rule]:
    """``python``, ``java``, a mapping ``{pattern, negate, match}``, or a list of them; ``none``/``[]`` = off."""
    items = spec if isinstance(spec, list) else [] if spec in (None, "none", False) else [spec]
    rules: list[Rule] = []
    for item in items:
        if item == "python":
            rules.append(PythonRule())
        elif item == "java":
            rules.append(JavaRule())
        elif isinstance(item, dict) and isinstance(item.get("pattern"), str):
            unknown = set(item) - {"pattern", "negate", "match"}
            if unknown:
                raise ValueError(f"multiline: unknown key {sorted(unknown)[0]!r} (pattern, negate, match)")
            rules.append(PatternRule(item["pattern"], bool(item.get("negate", False)), str(item.get("match", "after"))))
        else:
            raise ValueError(f"multiline: expected python, java, none or {{pattern, negate, match}}, got {shown(item)}")
    return rules


class Multiline:
    """Wraps a source (``FileTail``, ``StreamSource``); the same ``read``/``at_eof``/``paths``/``close``."""

    def __init__(
        self,
        inner: Any,
        rules: Sequence[Rule] = (PythonRule(), JavaRule()),
        *,
        max_lines: int = 500,
        max_bytes: int = 65_536,
        flush_timeout: float = 2.0,
        fmt: LineFormat | None = None,
    ) -> None:
        self.inner = inner
        self.rules = tuple(rules)
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.flush_timeout = flush_timeout
        self.fmt = fmt if fmt is not None else getattr(inner, "fmt", None)
        self.open: dict[str, _Open] = {}
        # the nearest JSON line before a record: read back from the file when the source can (FileTail), else
        # remembered per source as lines pass (stdin)
        self._looks_back = hasattr(inner, "line_before")
        self.last_json: dict[str, bytes] = {}
        self.joined = 0
        self.truncated = 0

    def read(self, max_lines: int, max_bytes: int, final: bool = False) -> list[RawLine]:
        lines = self.inner.read(max_lines, max_bytes, final)
        held = self.open
        if not held:  # the common case, all JSON lines and nothing held: hand them on as they are
            for item in lines:
                if item[3][:1] != b"{":
                    break
            else:
                if lines and not self._looks_back:
                    for source, _, _, line in lines:
                        self.last_json[source] = line
                return lines
        out: list[RawLine] = []
        for source, start, end, line in lines:
            record = held.get(source)
            if line[:1] == b"{":
                if record is not None:
                    out.append(self._close(source, held.pop(source)))
                if not self._looks_back:
                    self.last_json[source] = line
                out.append((source, start, end, line))
            elif record is not None and self._continues(record, line):
                self._extend(record, end, line)
            else:
                if record is not None:
                    out.append(self._close(source, record))
                held[source] = record = _Open(start, end, line)
                self._continues(record, line)  # let the rules see a record's first line (a Traceback header)
        if held:
            now = time.monotonic()
            done = final and not lines
            for source in [s for s, r in held.items() if done or now - r.updated >= self.flush_timeout]:
                out.append(self._close(source, held.pop(source)))
        return out

    def _continues(self, record: _Open, line: bytes) -> bool:
        joins = False
        for rule in self.rules:
            if rule.continues(record, line):
                joins = True
        return joins

    def _extend(self, record: _Open, end: int, line: bytes) -> None:
        record.end = end
        record.prev = line
        record.updated = time.monotonic()
        if record.truncated or len(record.lines) >= self.max_lines or record.nbytes + 1 + len(line) > self.max_bytes:
            record.truncated = True
            return
        record.lines.append(line)
        record.nbytes += 1 + len(line)

    def _close(self, source: str, record: _Open) -> RawLine:
        if len(record.lines) == 1 and not record.truncated:
            return source, record.start, record.end, record.lines[0]
        joined = JoinedLines(b"\n".join(record.lines))
        joined.truncated = record.truncated
        joined.inherited = self._inherited(source, record.start)
        self.joined += 1
        self.truncated += record.truncated
        return source, record.start, record.end, joined

    def _inherited(self, source: str, start: int) -> dict[str, Any] | None:
        line = self.inner.line_before(source, start) if self._looks_back else self.last_json.get(source)
        if line is None:
            return None
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if type(event) is not dict:
            return None
        (self.fmt or default_format()).adopt(event)
        return {k: event[k] for k in ("correlation_id", "@timestamp") if isinstance(event.get(k), str)}

    def at_eof(self) -> bool:
        return not self.open and self.inner.at_eof()

    def paths(self) -> dict[str, str]:
        return self.inner.paths()

    def identities(self) -> dict[str, tuple[int, int]]:
        return self.inner.identities()

    def unresumable(self) -> set[str]:
        return self.inner.unresumable()

    def __getattr__(self, name: str) -> Any:  # the rest of the wrapped source (identities, readers, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def close(self) -> None:
        self.inner.close()
