"""Every Elasticsearch query of the dashboards, run against the REAL node the way Grafana would run it: on the
Elasticsearch node, through a node list one of whose nodes is down, and signed with SigV4 through a verifying
proxy in front of the real OpenSearch node (the clients ``corrtrace.collector.connect`` builds).

Three requests cross five services; their log lines go in through the collector's index template and sink
when ``corrtrace.collector`` exports them (else an index template with the same mapping contract). Each
Grafana target is interpolated (``correlation_id`` textbox, ``service`` multi-value with a custom all
value, ES queries in the ``lucene`` format) and translated into the ``_search`` body Grafana's backend sends.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from corrtrace.collector import ElasticsearchSink, connect
from corrtrace.dashboards import build_all

from corrtrace import new_correlation_id
from tests.collector.sigv4 import OS_URL, Issuer, opensearch_prefix, verifying_proxy
from tests.dashboards import grafana_es

FLOW, HEALTH, ALERTS = build_all()
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = NOW - dt.timedelta(minutes=20)
SIX_HOURS_MS = 6 * 3600 * 1000


def ts(offset_ms: int) -> str:
    return (START + dt.timedelta(milliseconds=offset_ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(cid: str, at: int, service: str, message: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": ts(at),
        "message": message,
        "correlation_id": cid,
        "log": {"level": fields.pop("level", "info")},
        "service": {"name": service},
    }
    for dotted, value in fields.items():
        node = doc
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return doc


def access(cid: str, at: int, service: str, status: int, ms: int) -> dict[str, Any]:
    return event(
        cid,
        at,
        service,
        f"POST /{service} {status}",
        level="error" if status >= 500 else "info",
        event__dataset="corrtrace.access",
        event__duration=ms * 1_000_000,
        http__response__status_code=status,
        http__request__method="POST",
        url__path=f"/{service}",
        event__outcome="failure" if status >= 500 else "success",
    )


def outbound(cid: str, at: int, caller: str, callee: str, status: int, ms: int) -> dict[str, Any]:
    return event(
        cid,
        at,
        caller,
        f"call {callee} -> {status}",
        event__dataset="corrtrace.outbound",
        event__action="http-request",
        service__target__name=callee,
        event__duration=ms * 1_000_000,
        http__response__status_code=status,
    )


def txm(cid: str, at: int, action: str, participant: str, outcome: str) -> dict[str, Any]:
    return event(
        cid,
        at,
        "txmanager",
        f"{action} {participant}: {outcome}",
        event__dataset="corrtrace.txmanager",
        event__action=action,
        event__outcome=outcome,
        service__target__name=participant,
    )


def alarm(cid: str, at: int, name: str, state: str, action: str = "alarm") -> dict[str, Any]:
    return event(
        cid,
        at,
        "alerts",
        f"{name} -> {state}",
        event__dataset="corrtrace.alerts",
        event__action=action,
        labels__alarm_name=name,
        labels__alarm_state=state,
    )


A, B, C = new_correlation_id(), new_correlation_id(), new_correlation_id()
# Request A fails in payment; the manager rolls back orders (ok) and payment (fails once, then ok).
REQUEST_A = [
    event(A, 0, "api-gateway", "accepted POST /orders"),
    event(A, 40, "orders", "creating order 17"),
    access(A, 90, "payment", 500, 30),
    outbound(A, 95, "orders", "payment", 500, 38),
    access(A, 100, "orders", 502, 55),
    outbound(A, 105, "api-gateway", "orders", 502, 62),
    access(A, 110, "api-gateway", 502, 75),
    txm(A, 400, "rollback", "orders", "success"),
    txm(A, 410, "rollback", "payment", "failure"),
    txm(A, 900, "rollback", "payment", "success"),
]
REQUEST_B = [
    access(B, 5_000, "inventory", 200, 8),
    outbound(B, 5_010, "orders", "inventory", 200, 11),
    access(B, 5_020, "orders", 200, 25),
    outbound(B, 5_030, "api-gateway", "orders", 200, 31),
    access(B, 5_040, "api-gateway", 200, 40),
    txm(B, 5_100, "commit", "orders", "success"),
]
REQUEST_C = [
    access(C, 9_000, "users", 200, 3),
    outbound(C, 9_005, "api-gateway", "users", 200, 5),
    access(C, 9_010, "api-gateway", 200, 9),
]
ALERT_EVENTS = [
    alarm(A, 1_000, "errors", "ALARM"),
    alarm(A, 60_000, "errors", "OK"),
    alarm(B, 7_000, "stream-jam", "ALARM", action="stream-jam"),
]
ALL_EVENTS = REQUEST_A + REQUEST_B + REQUEST_C + ALERT_EVENTS
ACCESS_SERVICES = {"api-gateway", "orders", "payment", "inventory", "users"}


def _fallback_template(prefix: str) -> dict[str, Any]:
    """The collector's mapping contract (issue 4): contract fields keyword, other strings keyword too."""
    keyword = {"type": "keyword", "ignore_above": 1024}
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": keyword}}],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "message": {"type": "text"},
                    "correlation_id": keyword,
                    "service": {"properties": {"name": keyword, "target": {"properties": {"name": keyword}}}},
                    "log": {"properties": {"level": keyword}},
                    "event": {
                        "properties": {
                            "outcome": keyword,
                            "dataset": keyword,
                            "action": keyword,
                            "duration": {"type": "long"},
                        }
                    },
                    "http": {"properties": {"response": {"properties": {"status_code": {"type": "long"}}}}},
                },
            },
        },
    }


def load_events(es: Any, prefix: str, tmp_path: Path) -> str:
    """Index the events the way the collector does: its index template (public ``ensure_index_template``) and,
    once exported, its file shipping into its Elasticsearch sink; until then the same documents by bulk."""
    import corrtrace.collector as collector

    ensure = getattr(collector, "ensure_index_template", None)
    if ensure is not None:
        ensure(es, prefix=prefix)
    else:
        es.indices.put_index_template(name=prefix, **_fallback_template(prefix))
    ship, sink = getattr(collector, "ship_files", None), getattr(collector, "ElasticsearchSink", None)
    if ship is not None and sink is not None:
        path = tmp_path / "services.log"
        path.write_text("".join(json.dumps(e) + "\n" for e in ALL_EVENTS))
        ship([str(path)], [sink(es, prefix=prefix)])
    else:
        index = f"{prefix}-{START:%Y.%m.%d}"
        operations: list[dict[str, Any]] = []
        for i, doc in enumerate(ALL_EVENTS):
            operations += [{"create": {"_index": index, "_id": f"e{i}"}}, doc]
        result = es.bulk(operations=operations)
        assert not result["errors"], result
    es.indices.refresh(index=f"{prefix}-*")
    return f"{prefix}-*"


@pytest.fixture()
def index(es: Any, index_prefix: str, tmp_path: Path) -> str:
    return load_events(es, index_prefix, tmp_path)


def run(
    es: Any, index: str, board: dict[str, Any], panel_id: int, values: dict[str, Any], target_no: int = 0
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Interpolate and translate one panel's target, run it; returns (panel, search body, response)."""
    panel = next(p for p in board["panels"] if p["id"] == panel_id)
    target = copy.deepcopy(panel["targets"][target_no])
    target["query"] = grafana_es.interpolate(target["query"], values, board["templating"]["list"])
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    body = grafana_es.search_body(target, time_from=now_ms - SIX_HOURS_MS, time_to=now_ms, interval_ms=60_000)
    response = ElasticsearchSink(es, install_template=False).client.search(index, body)  # either client
    assert response["timed_out"] is False and response["_shards"]["failed"] == 0
    return panel, body, response


def frame(panel: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    return grafana_es.transform(grafana_es.raw_data_rows(response), panel.get("transformations", []))


def expected_order(events: list[dict[str, Any]]) -> list[str]:
    return [e["service"]["name"] for e in sorted(events, key=lambda e: e["@timestamp"])]


def run_every_query(es: Any, index: str) -> int:
    """Run every Elasticsearch target of every dashboard; each must match something. Returns how many ran."""
    ran = 0
    for board in (FLOW, HEALTH, ALERTS):
        for panel in board["panels"]:
            if panel["datasource"]["type"] != "elasticsearch":
                continue
            for k in range(len(panel["targets"])):
                if panel["targets"][k]["datasource"]["type"] != "elasticsearch":
                    continue  # the server-side math over two ES queries (checked below)
                _, _, response = run(es, index, board, panel["id"], {"correlation_id": A, "service": "$__all"}, k)
                hits = response["hits"]["total"]["value"]
                assert hits > 0, f"{board['uid']} panel {panel['id']} {panel['title']!r} matched nothing"
                if "transformations" in panel and panel["targets"][k]["metrics"][0]["type"] == "raw_data":
                    frame(panel, response)  # every transformation used is emulated
                ran += 1
    return ran


def test_every_es_query_of_every_dashboard_runs_on_the_real_node(es: Any, index: str) -> None:
    assert run_every_query(es, index) == 17


def test_every_query_runs_through_a_node_list_with_a_node_down(
    es_url: str, index_prefix: str, tmp_path: Path, free_port: Any, caplog: Any
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    caplog.set_level(logging.WARNING, logger="corrtrace.collector.elasticsearch")
    client = connect([dead, *es_url.split(",")], timeout=60)
    index = load_events(client, index_prefix, tmp_path)
    assert run_every_query(client, index) == 17
    rows = frame(*run(client, index, FLOW, 2, {"correlation_id": B})[::2])
    assert [r["service"] for r in rows] == expected_order([e for e in ALL_EVENTS if e["correlation_id"] == B])
    assert [r.getMessage() for r in caplog.records if "lost search node" in r.getMessage()] == [
        f"lost search node {dead}; shipping to the other 1 node(s)"
    ]


REGION = "eu-west-1"


@pytest.fixture()
def os_prefix() -> Iterator[str]:
    with opensearch_prefix("t-dash-sigv4") as name:
        yield name


def test_every_query_runs_signed_with_sigv4_on_the_real_opensearch_node(
    os_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = Issuer()
    issuer.add("AKIDDASHBOARDS", "dashboards-secret")
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIDDASHBOARDS",
        "AWS_SECRET_ACCESS_KEY": "dashboards-secret",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(key, value)
    with verifying_proxy(OS_URL, issuer, REGION) as proxy:
        client = connect(proxy.url, flavor="opensearch", aws_sigv4=(REGION, "es"), timeout=60)
        index = load_events(client, os_prefix, tmp_path)
        assert run_every_query(client, index) == 17
        panel, _, response = run(client, index, FLOW, 3, {"correlation_id": A})
        assert sorted((e["source"], e["target"]) for e in frame(panel, response)) == [
            ("api-gateway", "orders"),
            ("orders", "payment"),
        ]
        assert "denied" not in proxy.state, proxy.state["denied"][:3]
        assert proxy.state["keys_used"] == {"AKIDDASHBOARDS"}
        unsigned = httpx.post(f"{proxy.url}/{index}/_search", json={"size": 0}, timeout=30)
        assert unsigned.status_code == 403 and proxy.state["denied"] == ["missing authentication token"]


def test_logs_panel_returns_every_line_of_the_request_only(es: Any, index: str) -> None:
    _, body, response = run(es, index, FLOW, 1, {"correlation_id": A})
    assert body["size"] == 500 and "highlight" in body
    assert {h["_source"]["correlation_id"] for h in response["hits"]["hits"]} == {A}
    assert response["hits"]["total"]["value"] == len(REQUEST_A) + 2  # + its two alarm events


def test_flow_table_lists_exactly_the_services_of_the_request_in_time_order(es: Any, index: str) -> None:
    panel, body, response = run(es, index, FLOW, 2, {"correlation_id": B})
    assert body["sort"][0] == {"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}
    rows = frame(panel, response)
    assert [r["service"] for r in rows] == expected_order([e for e in ALL_EVENTS if e["correlation_id"] == B])
    assert [r["service"] for r in rows] == [
        "inventory",
        "orders",
        "orders",
        "api-gateway",
        "api-gateway",
        "txmanager",
        "alerts",
    ]
    assert list(rows[0]) == [
        "@timestamp",
        "service",
        "level",
        "message",
        "status",
        "duration_ns",
        "dataset",
        "correlation_id",
    ]
    assert rows[0]["status"] == 200 and rows[0]["duration_ns"] == 8_000_000
    rows_a = frame(*run(es, index, FLOW, 2, {"correlation_id": A})[::2])
    services_a = [r["service"] for r in rows_a]
    assert services_a[:7] == expected_order(REQUEST_A)[:7] and services_a[0] == "api-gateway"
    assert set(services_a) == {"api-gateway", "orders", "payment", "txmanager", "alerts"}
    assert [r["@timestamp"] for r in rows_a] == sorted(r["@timestamp"] for r in rows_a)


def test_edges_frame_has_the_calls_of_the_request(es: Any, index: str) -> None:
    panel, _, response = run(es, index, FLOW, 3, {"correlation_id": A})
    edges = frame(panel, response)
    assert panel["targets"][0]["refId"] == "edges" and panel["type"] == "nodeGraph"
    assert sorted((e["source"], e["target"]) for e in edges) == [("api-gateway", "orders"), ("orders", "payment")]
    assert all(set(e) == {"id", "source", "target", "mainstat", "secondarystat"} for e in edges)
    assert len({e["id"] for e in edges}) == 2
    assert {e["mainstat"] for e in edges} == {38_000_000, 62_000_000}
    edges_c = frame(*run(es, index, FLOW, 3, {"correlation_id": C})[::2])
    assert [(e["source"], e["target"]) for e in edges_c] == [("api-gateway", "users")]


def test_time_per_service_and_rollback_outcome_for_the_request(es: Any, index: str) -> None:
    _, _, response = run(es, index, FLOW, 4, {"correlation_id": A})
    sums = {b["key"]: b["1"]["value"] for b in grafana_es.buckets(response, "2")}
    assert sums == {"api-gateway": 75e6, "orders": 55e6, "payment": 30e6}
    panel, _, response = run(es, index, FLOW, 5, {"correlation_id": A})
    rows = frame(panel, response)
    assert [(r["action"], r["participant"], r["outcome"]) for r in rows] == [
        ("rollback", "orders", "success"),
        ("rollback", "payment", "failure"),
        ("rollback", "payment", "success"),
    ]


def test_health_aggregations_return_a_bucket_per_service(es: Any, index: str) -> None:
    _, body, response = run(es, index, HEALTH, 4, {"service": "$__all"})
    assert "service.name:*" in body["query"]["bool"]["filter"][1]["query_string"]["query"]
    rows = {b["key"]: b for b in grafana_es.buckets(response, "4")}
    assert set(rows) == ACCESS_SERVICES
    counts = {k: b["doc_count"] for k, b in rows.items()}
    assert counts == {"api-gateway": 3, "orders": 2, "payment": 1, "inventory": 1, "users": 1}
    p95 = {k: b["3"]["values"]["95.0"] for k, b in rows.items()}
    assert p95["payment"] == 30e6 and p95["users"] == 3e6 and p95["api-gateway"] >= 40e6
    for panel_id, target_no in ((1, 0), (2, 1), (3, 0)):  # time series: terms per service, date histogram inside
        _, body, response = run(es, index, HEALTH, panel_id, {"service": "$__all"}, target_no)
        assert body["aggs"]["2"]["aggs"]["3"]["date_histogram"]["fixed_interval"] == "60000ms"
        per_service = {
            b["key"]: sum(x["doc_count"] for x in b["3"]["buckets"]) for b in grafana_es.buckets(response, "2")
        }
        assert per_service == counts
    _, _, response = run(es, index, HEALTH, 4, {"service": "$__all"}, target_no=1)  # 5xx per service
    assert {b["key"]: b["doc_count"] for b in grafana_es.buckets(response, "4")} == {
        "api-gateway": 1,
        "orders": 1,
        "payment": 1,
    }


def series(response: dict[str, Any]) -> dict[str, dict[int, float]]:
    """terms -> date_histogram counts as Grafana's series: {service label: {time: value}}."""
    return {
        b["key"]: {int(x["key"]): float(x["doc_count"]) for x in b["3"]["buckets"]}
        for b in grafana_es.buckets(response, "2")
    }


def test_error_rate_expression_over_the_two_queries(es: Any, index: str) -> None:
    panel = next(p for p in HEALTH["panels"] if p["id"] == 2)
    assert [t["refId"] for t in panel["targets"]] == ["A", "B", "C"] and panel["targets"][2]["expression"] == "$A / $B"
    failed = series(run(es, index, HEALTH, 2, {"service": "$__all"}, target_no=0)[2])
    total = series(run(es, index, HEALTH, 2, {"service": "$__all"}, target_no=1)[2])
    # Grafana's math joins series on equal labels and divides point by point (0/0 points are NaN)
    rate = {svc: sum(failed[svc].values()) / sum(total[svc].values()) for svc in failed if svc in total}
    assert rate == {"api-gateway": pytest.approx(1 / 3), "orders": 0.5, "payment": 1.0}
    assert all(set(failed[svc]) == set(total[svc]) for svc in failed)  # same buckets (extended_bounds)


def test_health_service_variable_selects_services(es: Any, index: str) -> None:
    _, body, response = run(es, index, HEALTH, 4, {"service": ["orders", "payment"]})
    assert 'service.name:("orders" OR "payment")' in body["query"]["bool"]["filter"][1]["query_string"]["query"]
    assert {b["key"] for b in grafana_es.buckets(response, "4")} == {"orders", "payment"}
    _, _, response = run(es, index, HEALTH, 4, {"service": "api-gateway"})  # single value: escaped, unquoted
    assert [b["key"] for b in grafana_es.buckets(response, "4")] == ["api-gateway"]
    panel, _, response = run(es, index, HEALTH, 5, {"service": "$__all"})
    failed = frame(panel, response)
    assert {r["service.name"] for r in failed} == {"payment", "orders", "api-gateway"}
    assert {r["correlation_id"] for r in failed} == {A}  # the data link's ${__data.fields.correlation_id}


def test_alerts_and_rollbacks_queries(es: Any, index: str) -> None:
    _, _, response = run(es, index, ALERTS, 4, {})
    assert {b["key"]: b["doc_count"] for b in grafana_es.buckets(response, "2")} == {"success": 2, "failure": 1}
    _, _, response = run(es, index, ALERTS, 3, {})
    assert {b["key"] for b in grafana_es.buckets(response, "2")} == {"success", "failure"}
    _, _, response = run(es, index, ALERTS, 5, {})
    assert sum(b["doc_count"] for b in grafana_es.buckets(response, "2")) == 1
    panel, _, response = run(es, index, ALERTS, 1, {})
    states = frame(panel, response)
    assert [(r["labels.alarm_name"], r["labels.alarm_state"]) for r in states] == [
        ("errors", "ALARM"),
        ("errors", "OK"),
    ]
    panel, _, response = run(es, index, ALERTS, 6, {})
    assert {r["correlation_id"] for r in frame(panel, response)} == {A, B}


def test_interpolation_matches_grafana_formats() -> None:
    variables = HEALTH["templating"]["list"]
    assert grafana_es.interpolate('id:"${correlation_id}"', {"correlation_id": 'a-b"c'}) == 'id:"a\\-b\\"c"'
    assert grafana_es.interpolate("s:${service:lucene}", {"service": "$__all"}, variables) == "s:*"
    assert grafana_es.interpolate("s:$service", {"service": ["a b", "c"]}, variables) == 's:("a\\ b" OR "c")'
    assert grafana_es.interpolate("s:${service:raw}", {"service": ["a", "c"]}, variables) == "s:a,c"
    assert grafana_es.interpolate("n:$x", {"x": "42"}) == "n:42"
