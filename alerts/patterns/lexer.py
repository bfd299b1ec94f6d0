"""A character scanner shared by the parsers: positions for errors, quoted strings and ``%regex%`` spans."""

from __future__ import annotations

from corrtrace.alerts.patterns.errors import PatternError

WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class Scanner:
    """Reads a pattern left to right; every error it raises carries the current position."""

    def __init__(self, text: str, pos: int = 0, end: int | None = None) -> None:
        self.text = text
        self.pos = pos
        self.end = len(text) if end is None else end

    def error(self, reason: str, pos: int | None = None) -> PatternError:
        return PatternError(reason, self.pos if pos is None else pos, self.text)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : min(self.pos + n, self.end)]

    def skip_ws(self) -> None:
        while self.pos < self.end and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def accept(self, token: str) -> bool:
        if self.text.startswith(token, self.pos) and self.pos + len(token) <= self.end:
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, what: str) -> None:
        if not self.accept(token):
            found = self.peek() or "end of pattern"
            raise self.error(f"expected {what} but found {found!r}")

    def read_quoted(self) -> str:
        """A ``"..."`` string starting at the current position; ``\\"`` and ``\\\\`` are escapes."""
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < self.end:
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < self.end and self.text[self.pos + 1] in '"\\':
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == '"':
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise self.error("unterminated quoted string", start)

    def read_regex_span(self) -> tuple[int, str]:
        """The body of ``%...%`` (the closing ``%`` is the first one not escaped by a backslash)."""
        start = self.pos
        self.pos += 1
        body_start = self.pos
        while self.pos < self.end:
            ch = self.text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "%":
                body = self.text[body_start : self.pos]
                self.pos += 1
                return body_start, body
            self.pos += 1
        raise self.error("unterminated regular expression (missing closing '%')", start)

    def read_while(self, allowed: frozenset[str] | str) -> str:
        start = self.pos
        while self.pos < self.end and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]
