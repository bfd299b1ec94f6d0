"""CloudWatch Logs filter patterns: lexer, parser (errors with positions) and compiler to predicates."""

from corrtrace.alerts.patterns.compiler import MISSING, FilterPattern, compile_pattern, resolve_all, select
from corrtrace.alerts.patterns.errors import PatternError
from corrtrace.alerts.patterns.parser import parse

__all__ = ["MISSING", "FilterPattern", "PatternError", "compile_pattern", "parse", "resolve_all", "select"]
