"""Format one log record (a correlation ID and three extras) with corrtrace, python-json-logger and ecs-logging.

Prints the median time per record of each, over several repetitions, and corrtrace's speed-up against the
faster peer. Target (issue 2): at least 2x faster than the faster of the two. Each peer is set up to carry
the same information (time, level, logger, message, correlation ID, extras); ecs-logging adds more ECS fields.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable

import ecs_logging
from pythonjsonlogger.json import JsonFormatter as PythonJsonFormatter

import corrtrace
from corrtrace.logging import CorrelationFilter, JsonFormatter

REPEATS = 7
RECORDS = 50_000


def _record() -> logging.LogRecord:
    record = logging.LogRecord("checkout.orders", logging.INFO, __file__, 42, "order %s created", ("o-1",), None)
    record.__dict__.update({"order_id": "o-1", "amount": 12.5, "customer": "c-42"})
    return record


def _time_formatter(format_record: Callable[[logging.LogRecord], str]) -> float:
    """Median seconds per record, formatting a fresh record each time as a handler would."""
    samples = []
    cid_filter = CorrelationFilter()
    with corrtrace.bind_correlation_id("0192f0c1-7a3b-7c4d-9e5f-0123456789ab"):
        for _ in range(REPEATS):
            records = [_record() for _ in range(RECORDS)]
            start = time.perf_counter()
            for record in records:
                cid_filter.filter(record)
                format_record(record)
            samples.append((time.perf_counter() - start) / RECORDS)
    return statistics.median(samples)


def main() -> int:
    results = {
        "corrtrace": _time_formatter(JsonFormatter("checkout", version="1.0", environment="bench").format),
        # the same information as corrtrace's line: time, level, logger, message, correlation id, extras
        "python-json-logger": _time_formatter(
            PythonJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s").format
        ),
        "ecs-logging": _time_formatter(ecs_logging.StdlibFormatter().format),
    }
    print(f"logging: format one record with a correlation id and three extras (median of {REPEATS} x {RECORDS})")
    for name, seconds in results.items():
        print(f"  {name:20s} {seconds * 1e6:7.2f} us/record")
    fastest_peer = min(results["python-json-logger"], results["ecs-logging"])
    ratio = fastest_peer / results["corrtrace"]
    verdict = "meets" if ratio >= 2.0 else "MISSES"
    print(f"  corrtrace is {ratio:.2f}x faster than the faster peer ({verdict} the >= 2x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
