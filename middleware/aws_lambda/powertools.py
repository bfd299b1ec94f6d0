"""Interop with ``aws_lambda_powertools.Logger``: while corrtrace binds an ID, Powertools' loggers carry it too.

Nothing is imported: when Powertools is not loaded in the process this costs one ``sys.modules`` lookup. A
Powertools ``Logger`` marks its stdlib logger with ``powertools_handler``, whose formatter holds the keys
``Logger.set_correlation_id`` writes (``append_keys(correlation_id=...)``): corrtrace writes the same key.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _formatters() -> list[Any]:
    import logging

    found = []
    for logger in list(logging.root.manager.loggerDict.values()):
        formatter = getattr(getattr(logger, "powertools_handler", None), "formatter", None)
        if formatter is not None and hasattr(formatter, "append_keys") and hasattr(formatter, "get_current_keys"):
            found.append(formatter)
    return found


def _restore_nothing() -> None:
    return None


def bind(cid: str) -> Callable[[], None]:
    """Set Powertools' correlation ID to ``cid`` on every Powertools logger; returns what puts the old one back."""
    if "aws_lambda_powertools.logging" not in sys.modules:
        return _restore_nothing
    formatters = _formatters()
    previous = [f.get_current_keys().get("correlation_id") for f in formatters]
    for formatter in formatters:
        formatter.append_keys(correlation_id=cid)

    def restore() -> None:
        for formatter, value in zip(formatters, previous, strict=True):
            formatter.append_keys(correlation_id=value)

    return restore
