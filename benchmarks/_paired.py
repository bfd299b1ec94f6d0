"""The overhead estimator of benchmarks/middleware.py (ASGI, WSGI and Django rows): paired batches.

A middleware's overhead is a small difference of two larger figures (a WSGI request ~2.5 µs against a bare app
~0.7 µs), and the machine drifts while it is measured. Taking each candidate's median over its own batches and
subtracting the bare app's lets the drift between the two sets of batches into the difference. Here each
candidate's batch runs right beside a bare batch (the pair's order alternating, and the order of the candidates
rotating from round to round), the overhead is the median of those paired differences, and their spread
(quartiles) is printed beside it, so a reader sees how far one figure can be trusted. The same for every
candidate of every row. The difference of the two medians (the previous estimator) is kept for comparison.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

WARMUP = 2_000
BARE = "bare"


class Figures(NamedTuple):
    """One candidate's figures, in µs per request."""

    per_request: float  # median over its own batches
    overhead: float  # median of (its batch - the bare batch beside it); 0 for the bare app
    q1: float  # quartiles of those paired differences
    q3: float
    unpaired: float  # median of its batches - median of the bare batches (the previous estimator)
    order_effect: float  # median difference with the bare batch first minus with it second (~0: no bias)


def paired_overheads(
    apps: dict[str, Any], batch: Callable[[Any, int], float], requests: int, rounds: int
) -> dict[str, Figures]:
    """Figures of each app in ``apps`` (its first entry named ``bare``); ``batch(app, n)`` runs ``n`` requests
    (each batch in a fresh, empty ``contextvars.Context``) and returns their CPU seconds."""
    names = list(apps)
    if names[0] != BARE:
        raise ValueError("the first candidate must be the bare app")
    others = names[1:]
    for app in apps.values():
        batch(app, WARMUP)
    own: dict[str, list[float]] = {name: [] for name in names}
    diffs: dict[str, list[tuple[bool, float]]] = {name: [] for name in others}
    for r in range(rounds):
        shift = r % len(others)
        for name in others[shift:] + others[:shift]:
            bare_first = len(diffs[name]) % 2 == 0  # each candidate's own pairs alternate, whatever their count
            pair = (BARE, name) if bare_first else (name, BARE)
            took = {who: batch(apps[who], requests) / requests * 1e6 for who in pair}
            own[BARE].append(took[BARE])
            own[name].append(took[name])
            diffs[name].append((bare_first, took[name] - took[BARE]))
    bare = statistics.median(own[BARE])
    figures = {BARE: Figures(bare, 0.0, 0.0, 0.0, 0.0, 0.0)}
    for name in others:
        values = [d for _, d in diffs[name]]
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        first = [d for bare_first, d in diffs[name] if bare_first]
        second = [d for bare_first, d in diffs[name] if not bare_first]
        effect = statistics.median(first) - statistics.median(second) if first and second else 0.0
        median = statistics.median(own[name])
        figures[name] = Figures(median, statistics.median(values), q1, q3, median - bare, effect)
    return figures
