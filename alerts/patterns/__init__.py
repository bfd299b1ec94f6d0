"""CloudWatch Logs filter patterns: lexer, parser (errors with positions) and compiler to predicates.

What a user calls: ``compile_pattern(text)`` -> ``FilterPattern`` (``.test(message)``), ``parse(text)`` for the
syntax tree, ``PatternError`` for a bad pattern. Selector helpers (``select``, ``resolve_all``, ``MISSING``) are
the compiler's own: import them from ``corrtrace.alerts.patterns.compiler``.
"""

from corrtrace.alerts.patterns.compiler import FilterPattern, compile_pattern
from corrtrace.alerts.patterns.errors import PatternError
from corrtrace.alerts.patterns.parser import parse

__all__ = ["FilterPattern", "PatternError", "compile_pattern", "parse"]
