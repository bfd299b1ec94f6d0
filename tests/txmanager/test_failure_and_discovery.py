"""Final failure notifies SNS (read back from SQS on moto); participants nobody registered are found in logs."""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from corrtrace.txmanager import LogDiscovery, TxManagerClient, create_app
from corrtrace.txmanager.discovery import collector_search, default_discover

from corrtrace import bind_correlation_id, new_correlation_id
from corrtrace.logging import configure, parse_line
from tests.txmanager.conftest import SECRET, Mesh, Recorder, participant_app


def _topic_with_queue(aws: Any) -> tuple[str, str]:
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name="corrtrace-txmanager-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


def test_final_failure_is_logged_and_published_to_sns(
    aws, settings, store, servers, free_port, caplog: pytest.LogCaptureFixture
) -> None:
    topic, queue_url = _topic_with_queue(aws)
    settings = replace(settings, sns_topic_arn=topic, max_attempts=3)
    ok, broken, mismatched = Recorder("ok"), Recorder("broken", fail_first=100), Recorder("mismatched")
    urls = {
        "ok": servers(participant_app(ok), free_port()).url,
        "broken": servers(participant_app(broken), free_port()).url,
        "mismatched": servers(participant_app(mismatched, secret="another-secret"), free_port()).url,
    }
    manager = servers(create_app(settings, store=store), free_port())
    cid = new_correlation_id()
    with TxManagerClient(manager.url, SECRET) as client:
        for name in ("ok", "broken", "mismatched"):
            client.register(cid, name, f"{urls[name]}/corrtrace/rollback/{{id}}")
        with caplog.at_level(logging.INFO, logger="corrtrace.txmanager"):
            client.rollback(cid, reason="order 42 failed", source="alert:errors")
            status = Mesh(manager, client, {}, urls).wait(cid, ("rolled_back", "failed"))

    assert status["state"] == "failed"
    by_name = {p["service"]: p for p in status["participants"]}
    assert by_name["broken"]["state"] == "failed" and by_name["broken"]["attempts"] == 3  # retried to the limit
    assert by_name["broken"]["last_status"] == 500
    assert by_name["mismatched"]["state"] == "failed" and by_name["mismatched"]["attempts"] == 1  # 401: no retry
    assert by_name["ok"]["state"] == "succeeded" and ok.count() == 1
    assert broken.hits["rollback"] == 3 and broken.count() == 0 and mismatched.calls == 0

    messages = aws("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    notice = json.loads(envelope["Message"])
    assert envelope["TopicArn"] == topic and envelope["Subject"] == "corrtrace rollback failed"
    assert envelope["MessageAttributes"]["correlation_id"]["Value"] == cid
    assert notice["correlation_id"] == cid and notice["state"] == "failed" and notice["reason"] == "order 42 failed"
    assert sorted(f["service"] for f in notice["failed_participants"]) == ["broken", "mismatched"]
    deadline = time.time() + 5
    while list(store.unfinished()) and time.time() < deadline:  # the marker goes right after the publish
        time.sleep(0.02)
    assert list(store.unfinished()) == []  # notified: nothing left to resume

    records = [r for r in caplog.records if r.__dict__.get("event.dataset") == "corrtrace.txmanager"]
    finals = {
        (r.__dict__.get("service.target.name"), r.__dict__["event.outcome"])
        for r in records
        if r.__dict__.get("event.outcome") in ("success", "failure")
    }
    assert finals == {("ok", "success"), ("broken", "failure"), ("mismatched", "failure"), (None, "failure")}
    retries = [r for r in records if r.__dict__.get("event.outcome") == "unknown"]
    assert len(retries) == 2 and all(r.__dict__["service.target.name"] == "broken" for r in retries)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def _log_lines(cid: str) -> list[dict[str, Any]]:
    """Real corrtrace log lines from four services, two requests, parsed back as the log store returns them."""
    events: list[dict[str, Any]] = []
    for service, ids in (("ui", [cid]), ("checkout", [cid, "other-request"]), ("payment", [cid]), ("legacy", [cid])):
        stream = io.StringIO()
        handler = configure(service, stream=stream, logger=f"test.discovery.{service}")
        logger = logging.getLogger(f"test.discovery.{service}")
        logger.propagate = False
        for one in ids:
            with bind_correlation_id(one):
                logger.info("did work")
        logger.removeHandler(handler)
        time.sleep(0.003)  # distinct millisecond timestamps per service
        events += [parse_line(line) for line in stream.getvalue().splitlines()]
    return events


def test_participants_are_discovered_from_the_logs_when_nobody_registered(mesh, settings, store, servers, free_port):
    recs = {name: Recorder(name) for name in ("ui", "checkout", "payment")}
    m: Mesh = mesh(**recs)
    cid = new_correlation_id()
    lines = _log_lines(cid)
    searched: list[str] = []

    def search(correlation_id: str) -> list[dict[str, Any]]:
        searched.append(correlation_id)
        return [e for e in reversed(lines) if e.get("correlation_id") == correlation_id]  # order by @timestamp

    discovery = LogDiscovery(search, m.urls)  # "legacy" logged but has no URL: reported, left out
    manager = servers(create_app(settings, store=store, discover=discovery), free_port())
    with TxManagerClient(manager.url, SECRET) as client:
        client.rollback(cid, reason="checkout error", source="alert")
        status = Mesh(manager, client, recs, m.urls).wait(cid, ("rolled_back", "failed"))
        client.rollback(cid, reason="duplicate")  # participants known now: no second search

    assert searched == [cid]
    assert status["state"] == "rolled_back"
    assert [(p["service"], p["discovered"]) for p in status["participants"]] == [
        ("ui", True),
        ("checkout", True),
        ("payment", True),
    ]
    order = sorted(recs, key=lambda n: recs[n].effects[0][2])
    assert order == ["payment", "checkout", "ui"]
    assert all(rec.count() == 1 for rec in recs.values())


def test_discovery_is_off_unless_configured(settings) -> None:
    assert default_discover(settings) is None
    assert default_discover(replace(settings, service_urls={"ui": "http://ui:8000"})) is None
    configured = replace(settings, service_urls={"ui": "http://ui:8000"}, discovery_backend="http://es:9200")
    assert isinstance(default_discover(configured), LogDiscovery)


def _ship_real_logs(tmp_path: Path, cid: str) -> list[Path]:
    """Each service writes its own JSON log file with corrtrace.logging, as in production."""
    files = []
    for service in ("ui", "checkout", "payment"):
        path = tmp_path / f"{service}.log"
        handler = configure(service, path=path, logger=f"test.ship.{service}")
        logger = logging.getLogger(f"test.ship.{service}")
        logger.propagate = False
        with bind_correlation_id(cid):
            logger.info("handled the order")
        with bind_correlation_id("someone-else"):
            logger.info("unrelated")
        logger.removeHandler(handler)
        handler.close()
        files.append(path)
        time.sleep(0.003)
    return files


def test_default_discovery_reads_the_collector_store(mesh, settings, store, servers, free_port, tmp_path: Path):
    from corrtrace.collector import EmbeddedStore, ship_files

    recs = {name: Recorder(name) for name in ("ui", "checkout", "payment")}
    m: Mesh = mesh(**recs)
    cid = new_correlation_id()
    db = tmp_path / "store" / "events.sqlite3"
    ship_files(_ship_real_logs(tmp_path, cid), [EmbeddedStore(db)], data_dir=tmp_path / "ckpt")
    configured = replace(settings, service_urls=m.urls, discovery_backend=str(db))
    manager = servers(create_app(configured, store=store), free_port())
    with TxManagerClient(manager.url, SECRET) as client:
        client.rollback(cid, reason="from the logs")
        status = Mesh(manager, client, recs, m.urls).wait(cid, ("rolled_back", "failed"))
    assert [p["service"] for p in status["participants"]] == ["ui", "checkout", "payment"]
    assert sorted(recs, key=lambda n: recs[n].effects[0][2]) == ["payment", "checkout", "ui"]


def test_discovery_says_when_the_request_has_more_lines_than_one_search_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request with more than 10,000 lines: a service whose first line comes after them cannot be found; the
    manager says so instead of rolling back fewer services in silence."""
    import orjson
    from corrtrace.collector import EmbeddedStore, ship_files

    log = tmp_path / "app.log"
    busy = (
        orjson.dumps({"correlation_id": "big-tx", "service": {"name": "batch"}, "message": f"row {i}"})
        for i in range(10_000)
    )
    late = orjson.dumps({"correlation_id": "big-tx", "service": {"name": "late"}, "message": "done"})
    log.write_bytes(b"\n".join([*busy, late]) + b"\n")
    store = EmbeddedStore(tmp_path / "store")
    ship_files([log], [store])
    discovery = LogDiscovery(collector_search(store), {"batch": "http://batch", "late": "http://late"})
    with caplog.at_level(logging.WARNING, logger="corrtrace.txmanager"):
        assert [p.service for p in discovery("big-tx")] == ["batch"]
    assert any("discovery read the first 10,000 lines" in r.getMessage() for r in caplog.records)


def test_default_discovery_reads_elasticsearch(settings, es, es_url: str, index_prefix: str, tmp_path: Path):
    from corrtrace.collector import ElasticsearchSink, ship_files

    cid = new_correlation_id()
    ship_files(_ship_real_logs(tmp_path, cid), [ElasticsearchSink(es, prefix=index_prefix)], data_dir=tmp_path / "c")
    es.indices.refresh(index=f"{index_prefix}-*")
    urls = {"ui": "http://ui:1", "checkout": "http://checkout:2", "payment": "http://payment:3"}
    configured = replace(settings, service_urls=urls, discovery_backend=es_url, discovery_index_prefix=index_prefix)
    discover = default_discover(configured)
    assert discover is not None
    assert [(p.service, p.rollback_url) for p in discover(cid)] == [
        ("ui", "http://ui:1/corrtrace/rollback/{id}"),
        ("checkout", "http://checkout:2/corrtrace/rollback/{id}"),
        ("payment", "http://payment:3/corrtrace/rollback/{id}"),
    ]
    assert discover(new_correlation_id()) == []


def test_a_later_trigger_rolls_back_participants_whose_logs_arrived_late(mesh, settings, store, servers, free_port):
    rec = Recorder("late-logger")
    m: Mesh = mesh(**{"late-logger": rec})
    cid = new_correlation_id()
    shipped: list[dict[str, Any]] = []
    discovery = LogDiscovery(lambda _cid: list(shipped), m.urls)
    manager = servers(create_app(settings, store=store, discover=discovery), free_port())
    with TxManagerClient(manager.url, SECRET) as client:
        waiter = Mesh(manager, client, {}, {})
        client.rollback(cid)
        assert waiter.wait(cid, ("rolled_back",))["participants"] == []  # nothing logged yet
        shipped.append(
            {"@timestamp": "2026-01-01T00:00:00.000Z", "correlation_id": cid, "service": {"name": "late-logger"}}
        )
        assert client.rollback(cid)["started"] is False
        status = waiter.wait(cid, ("rolled_back",))
        deadline = time.time() + 10
        while rec.count() == 0 and time.time() < deadline:
            status = waiter.wait(cid, ("rolled_back",))
            time.sleep(0.05)
    assert [(p["service"], p["state"]) for p in status["participants"]] == [("late-logger", "succeeded")]
    assert rec.count() == 1 and rec.hits["rollback"] == 1
