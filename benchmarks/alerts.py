"""Filter-pattern predicates against hand-written Python for the same condition, in the same run.

Per pattern family (terms, regex, JSON, space-delimited): median time per event of the compiled predicate and
of a hand-written function with the same semantics, over the same events. Targets (issue 5, §8): compiled at
most 1.5x the hand-written time; a JSON pattern on a pre-parsed event at most 0.5x the cost of orjson.loads of
that line. Loops use ``deque(map(f, events), maxlen=0)`` so loop overhead does not dilute the ratios; each batch
is timed with the thread's CPU clock (as benchmarks/middleware.py), so time the scheduler gives other processes
on a shared machine is not counted.
Run: ``python benchmarks/alerts.py [--json]``; exit 1 when a target is missed.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import time
from collections import deque as _drain
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import re2
from corrtrace.alerts import compile_pattern

_PEERS = {"orjson_loads_ns": "orjson.loads", "hand_ns": "hand-written", "python_re_ns": "Python re"}
REPEATS = 7
ROUNDS = 5  # interleaved rounds; the minimum of the per-round medians resists load from other processes
EVENTS = 20_000
random.seed(5)


def _median_ns(fn: Callable[[Any], Any], events: Sequence[Any]) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.thread_time()
        _drain(map(fn, events), maxlen=0)
        samples.append((time.thread_time() - start) / len(events) * 1e9)
    return statistics.median(samples)


def _pair(compiled: Callable[[Any], Any], hand: Callable[[Any], Any], events: Sequence[Any]) -> tuple[float, float]:
    """Interleave the two so that both see the same machine state; check they agree first."""
    disagree = sum(1 for e in events if bool(compiled(e)) != bool(hand(e)))
    if disagree:
        raise SystemExit(f"compiled and hand-written disagree on {disagree} events")
    c, h = [], []
    for _ in range(ROUNDS):
        c.append(_median_ns(compiled, events))
        h.append(_median_ns(hand, events))
    return min(c), min(h)


def _text_events() -> list[str]:
    words = ["INFO", "ERROR", "WARN", "DEBUG", "request", "Exception", "ERR503", "timeout", "user", "ok"]
    return [" ".join(random.choice(words) for _ in range(12)) for _ in range(EVENTS)]


def _json_events() -> tuple[list[dict[str, Any]], list[bytes]]:
    events = []
    for i in range(EVENTS):
        events.append(
            {
                "@timestamp": "2026-01-01T00:00:00.000Z",
                "message": "request handled",
                "correlation_id": f"0192f0c1-7a3b-7c4d-9e5f-{i:012d}",
                "log": {"level": random.choice(["INFO", "ERROR"]), "logger": "checkout.api"},
                "service": {"name": "checkout", "version": "1.4.2", "environment": "prod"},
                "event": {
                    "dataset": "corrtrace.access",
                    "outcome": random.choice(["success", "failure"]),
                    "duration": random.randint(1_000_000, 900_000_000),
                },
                "http": {"request": {"method": "POST"}, "response": {"status_code": random.choice([200, 404, 503])}},
                "url": {"path": "/orders"},
            }
        )
    return events, [orjson.dumps(e) for e in events]


def _apache_events() -> list[str]:
    out = []
    for _ in range(EVENTS):
        status = random.choice([200, 404, 403, 500])
        size = random.randint(100, 5000)
        out.append(f'127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" {status} {size}')
    return out


def main() -> int:
    results: dict[str, dict[str, float]] = {}

    # terms
    terms = compile_pattern("ERROR Exception -DEBUG").matches

    def hand_terms(m: str) -> bool:
        return "ERROR" in m and "Exception" in m and "DEBUG" not in m

    text = _text_events()
    c, h = _pair(terms, hand_terms, text)
    results["terms"] = {"compiled_ns": c, "hand_ns": h, "ratio": c / h}

    # regex: the hand-written peer uses the same linear-time engine (google-re2) the obvious way; Python's
    # backtracking ``re`` is shown for information only (no target): it is what a hostile line exploits
    regex = compile_pattern(r"%ERR5\d\d%").matches
    re2_search = re2.compile(r"ERR5\d\d").search
    backtracking = re.compile(r"ERR5\d\d", re.ASCII).search

    def hand_regex(m: str) -> bool:
        return re2_search(m) is not None

    def python_re(m: str) -> bool:
        return backtracking(m) is not None

    c, h = _pair(regex, hand_regex, text)
    results["regex"] = {"compiled_ns": c, "hand_ns": h, "ratio": c / h}
    c, h = _pair(regex, python_re, text)
    results["regex_vs_python_re"] = {"compiled_ns": c, "python_re_ns": h, "ratio": c / h, "info": True}
    rare = [m.replace("ERR503", "ERR404") if i % 50 else m for i, m in enumerate(text)]
    c, h = _pair(regex, python_re, rare)
    results["regex_rare_vs_python_re"] = {"compiled_ns": c, "python_re_ns": h, "ratio": c / h, "info": True}

    # JSON on pre-parsed events
    json_pattern = compile_pattern('{ $.event.outcome = "failure" && $.http.response.status_code >= 500 }')

    def hand_json(d: Any) -> bool:
        event = d.get("event") if isinstance(d, dict) else None
        if not isinstance(event, dict) or event.get("outcome") != "failure":
            return False
        http = d.get("http")
        response = http.get("response") if isinstance(http, dict) else None
        code = response.get("status_code") if isinstance(response, dict) else None
        return type(code) in (int, float) and code >= 500  # type: ignore[operator]

    parsed, lines = _json_events()
    c, h = _pair(json_pattern.matches_parsed, hand_json, parsed)
    results["json"] = {"compiled_ns": c, "hand_ns": h, "ratio": c / h}
    # The engine evaluates a JSON pattern right after parsing the line, while the event is in cache: measure
    # both on the same 512 events repeated (hot), and report the cold figure above (20,000 distinct parsed
    # events, larger than the CPU cache) next to it.
    hot_events = parsed[:512] * 40
    hot_lines = lines[:512] * 40
    hot, parse, cold, cold_parse = [], [], [], []
    for _ in range(ROUNDS):
        hot.append(_median_ns(json_pattern.matches_parsed, hot_events))
        parse.append(_median_ns(orjson.loads, hot_lines))
        cold.append(_median_ns(json_pattern.matches_parsed, parsed))
        cold_parse.append(_median_ns(orjson.loads, lines))
    hot_ns, parse_ns = min(hot), min(parse)
    results["json_vs_orjson_loads"] = {
        "compiled_ns": hot_ns,
        "orjson_loads_ns": parse_ns,
        "ratio": hot_ns / parse_ns,
        "cold_compiled_ns": min(cold),
        "cold_orjson_loads_ns": min(cold_parse),
        "cold_ratio": min(cold) / min(cold_parse),
    }

    # space-delimited
    delimited = compile_pattern("[ip, user, username, timestamp, request, status_code=4*, bytes>1000]").matches
    token = re.compile(r'\[[^\]]*\]|"[^"]*"|[^ ]+').findall

    def hand_delimited(m: str) -> bool:
        t = token(m)
        if len(t) != 7 or not t[5].startswith("4"):
            return False
        try:
            return float(t[6]) > 1000
        except ValueError:
            return False

    c, h = _pair(delimited, hand_delimited, _apache_events())
    results["space_delimited"] = {"compiled_ns": c, "hand_ns": h, "ratio": c / h}

    ok = all(r["ratio"] <= 1.5 for k, r in results.items() if k != "json_vs_orjson_loads" and not r.get("info"))
    ok = ok and results["json_vs_orjson_loads"]["ratio"] <= 0.5
    if "--json" in sys.argv:
        print(json.dumps({"results": results, "targets_met": ok}, indent=2))
    else:
        for family, r in results.items():
            peer = next(p for k, p in _PEERS.items() if k in r)
            peer_ns = r.get("orjson_loads_ns", r.get("hand_ns", r.get("python_re_ns", 0.0)))
            target = 0.5 if family == "json_vs_orjson_loads" else 1.5
            verdict = (
                "(information, no target)"
                if r.get("info")
                else (f"(target <= {target}) {'ok' if r['ratio'] <= target else 'MISSED'}")
            )
            print(
                f"{family:24s} compiled {r['compiled_ns']:8.1f} ns/event   {peer:13s} {peer_ns:8.1f} ns/event   "
                f"ratio {r['ratio']:.2f} {verdict}"
            )
            if "cold_ratio" in r:
                print(
                    f"{'':22s} (cold, {EVENTS} distinct events: compiled {r['cold_compiled_ns']:.1f} ns/event, "
                    f"orjson.loads {r['cold_orjson_loads_ns']:.1f} ns/event, ratio {r['cold_ratio']:.2f})"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
