"""The capacity model of docs/scaling.md, recomputed from the latest benchmark figures.

Reads ``benchmarks/results/latest.json`` (written by ``benchmarks/run_all.py``: each benchmark's ``name: {json}``
result lines, by benchmark) and falls back, figure by figure, to the hand measurements recorded in the same file
under ``reference`` (issue 13, this 2-core machine). Prints the per-unit figures, then what to run at 1x, 10x,
100x and 1,000x the baseline load, and which part stops scaling first. ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

LATEST = Path(__file__).resolve().parent / "results" / "latest.json"

# the baseline ("this load"): a mesh serving 1,000 requests/s, each writing 10 log lines and every 20th request
# running a 3-participant transaction
BASE_REQUESTS_PER_S = 1_000
LINES_PER_REQUEST = 10
TX_SHARE = 1 / 20
LINE_BYTES = 350  # the benchmark's generated JSON line
# AWS quotas (defaults; most can be raised): CloudWatch Logs PutLogEvents 1,500 requests/s per account and region,
# 1 MiB and 10,000 events per request; DynamoDB on-demand 40,000 write request units/s per table
CW_PUTS_PER_S = 1_500
CW_REQUEST_BYTES = 1_048_576
CW_REQUEST_EVENTS = 10_000
DDB_TABLE_WRU = 40_000


def load(path: Path = LATEST) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def figure(
    data: dict[str, Any],
    bench: str,
    step: str,
    key: str,
    *,
    also: tuple[tuple[str, str, str], ...] = (),
    ref: str | None = None,
) -> tuple[float, str]:
    """``data[bench][step][key]`` from the latest run (else the first of ``also`` that was measured), else the
    reference measurement ``ref`` (default ``key``); and where it came from."""
    for b, s, k in ((bench, step, key), *also):
        value = data.get(b, {}).get("results", {}).get(s, {}).get(k)
        if isinstance(value, int | float):
            return float(value), f"{b}.{s}.{k} ({data[b].get('when', 'latest run')})"
    return float(data.get("reference", {})[ref or key]), "reference (see below)"


def model(data: dict[str, Any]) -> dict[str, Any]:
    # benchmarks/shipping.py: `corrtrace collect --once` and pre-built NDJSON _bulk bodies on the real node
    collector_eps, collector_src = figure(
        data,
        "shipping",
        "capacity",
        "collector_events_per_s",
        also=(("collector", "file_to_elasticsearch", "events_per_s"),),
        ref="events_per_s",
    )
    node_docs_per_s, node_src = figure(data, "shipping", "capacity", "node_docs_per_s")
    calls_per_tx, calls_src = figure(data, "txmanager", "report", "calls_per_transaction")
    # per manager core, from the manager's CPU time per transaction in the 200-transaction run (the rate measured
    # against moto is the emulator's, not the manager's)
    manager_tps, manager_src = figure(data, "txmanager", "report", "manager_transactions_per_s")
    units = {
        "collector_events_per_s": (round(collector_eps), collector_src),
        "es_node_docs_per_s": (round(node_docs_per_s), node_src),
        "dynamodb_calls_per_transaction": (calls_per_tx, calls_src),
        "manager_transactions_per_s_per_core": (manager_tps, manager_src),
    }
    rows = []
    for scale in (1, 10, 100, 1_000):
        events = BASE_REQUESTS_PER_S * scale * LINES_PER_REQUEST
        tx = BASE_REQUESTS_PER_S * scale * TX_SHARE
        per_put = min(CW_REQUEST_EVENTS, CW_REQUEST_BYTES // (LINE_BYTES + 26))
        rows.append(
            {
                "scale": scale,
                "events_per_s": events,
                "collectors": math.ceil(events / collector_eps),
                # one replica: every document is indexed twice
                "es_nodes": max(3, math.ceil(2 * events / node_docs_per_s)),
                "cw_puts_per_s": math.ceil(events / per_put),
                "cw_quota_share": round(events / per_put / CW_PUTS_PER_S, 3),
                "transactions_per_s": tx,
                "ddb_units_per_s": round(tx * calls_per_tx),
                "ddb_tables": math.ceil(tx * calls_per_tx / DDB_TABLE_WRU),
                "managers": math.ceil(tx / manager_tps) if manager_tps > 0 else None,  # 0 = not measured yet
            }
        )
    return {"units": units, "rows": rows, "reference_source": data.get("reference", {}).get("source")}


def render(result: dict[str, Any]) -> str:
    out = ["Per unit (this 2-core machine):"]
    for name, (value, source) in result["units"].items():
        out.append(f"  {name:<34} {value:>10,.1f}   from {source}")
    if result.get("reference_source"):
        out.append(f"  reference: {result['reference_source']}")
    out.append("")
    out.append(
        "| load | events/s | collectors (1 core) | ES nodes (2 cores, 1 replica) | CloudWatch puts/s "
        "(share of 1,500/s) | transactions/s | DynamoDB units/s (tables) | managers (1 core) |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        out.append(
            f"| {r['scale']:,}x | {r['events_per_s']:,} | {r['collectors']:,} | {r['es_nodes']:,} | "
            f"{r['cw_puts_per_s']:,} ({r['cw_quota_share']:.0%}) | {r['transactions_per_s']:,.0f} | "
            f"{r['ddb_units_per_s']:,} ({r['ddb_tables']}) | "
            f"{'not measured' if r['managers'] is None else format(r['managers'], ',')} |"
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--results", type=Path, default=LATEST)
    args = parser.parse_args(argv)
    result = model(load(args.results))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
