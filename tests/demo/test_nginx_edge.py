"""The edge (issue 17 §3): a real nginx (Debian's, started by scripts/nginx/nginx.sh with deploy/nginx/'s
snippets) in front of the demo's ui. A request is one flow under one ID in `corrtrace search`, nginx's access line
first: the ID nginx generated when the client sent none, or the client's own valid one."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from corrtrace.collector.parsers import build_format
from corrtrace.collector.record import make_record
from corrtrace.demo.faults import plan_orders
from corrtrace.demo.runner import Demo
from corrtrace.demo.settings import DemoSettings
from corrtrace.demo.verify import OrderOutcome

FLOW = {"nginx", "ui", "catalog", "checkout", "payment", "shipping", "txmanager"}


def test_a_request_through_nginx_is_one_flow_with_the_edge_line_first(tmp_path: Path) -> None:
    settings = DemoSettings(
        orders=3, seed=3, decline_rate=0, poison_rate=0, slow_rate=0, workdir=str(tmp_path / "demo"), with_nginx=True
    )
    plans = plan_orders(3, seed=3, decline_rate=0, poison_rate=0, slow_rate=0)
    with Demo(settings) as demo:
        assert demo.mesh is not None
        edge = demo.mesh.url("nginx")
        response = httpx.post(f"{edge}/orders", json=plans[0].payload(), timeout=30)  # no ID: nginx makes one
        generated = response.headers["x-correlation-id"]
        assert response.status_code == 201 and re.fullmatch(r"[0-9a-f]{32}", generated)
        kept = demo.place(plans[1])  # the client's own (valid) ID, kept by nginx
        bad = httpx.post(
            f"{edge}/orders", json=plans[2].payload(), timeout=30, headers={"X-Correlation-ID": "not valid <script>"}
        )
        replaced = bad.headers["x-correlation-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", replaced)  # an invalid one is replaced, never forwarded
        outcomes = [
            OrderOutcome(plans[0], generated, response.status_code, response.json()),
            kept,
            OrderOutcome(plans[2], replaced, bad.status_code, bad.json()),
        ]
        assert demo.settle(outcomes, timeout=90) == []
        for outcome in outcomes:
            events = demo.search(outcome.correlation_id)
            first = events[0]
            assert first["service"]["name"] == "nginx" and first["event"]["dataset"] == "nginx.access"
            assert first["http"]["request"]["method"] == "POST" and first["url"]["path"] == "/orders"
            assert first["http"]["response"]["status_code"] == 201
            assert {e["service"]["name"] for e in events} >= FLOW
            assert all(e["correlation_id"] == outcome.correlation_id for e in events)
        access = demo.mesh.nginx_access_log.read_text().splitlines()
        orders = [line for line in access if '"POST /orders ' in line]
        assert len(orders) == 3 and kept.correlation_id in orders[1] and "<script>" not in "".join(access)
        nginx = build_format("nginx")
        assert [make_record("t", 0, 1, line.encode(), fmt=nginx)[1]["correlation_id"] for line in orders] == [
            generated,
            kept.correlation_id,
            replaced,
        ]
