"""Split a log line into space-delimited fields: ``[...]`` and ``"..."`` are one field, delimiters stripped."""

from __future__ import annotations

import re

_TOKEN = re.compile(r'\[[^\]]*\]|"[^"]*"|[^ ]+')
tokenize = _TOKEN.findall


def unwrap(raw: str) -> str:
    """Strip the brackets or quotes that made ``raw`` one field."""
    if len(raw) >= 2 and ((raw[0] == "[" and raw[-1] == "]") or (raw[0] == '"' and raw[-1] == '"')):
        return raw[1:-1]
    return raw


def tokenize_rest(message: str, count: int) -> list[str]:
    """Like ``tokenize`` but the ``count``-th field takes the rest of the line (the 2022+ doc reading)."""
    out: list[str] = []
    for match in _TOKEN.finditer(message):
        if len(out) == count - 1:
            out.append(message[match.start() :].rstrip(" "))
            return out
        out.append(match.group(0))
    return out
