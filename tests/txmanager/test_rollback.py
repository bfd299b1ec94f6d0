"""Rollback and commit end to end: real manager and participants over HTTP, state in DynamoDB on moto."""

from __future__ import annotations

import time

import pytest

from corrtrace import new_correlation_id
from tests.txmanager.conftest import Mesh, Recorder


def test_participant_answering_500_twice_then_200_is_rolled_back_exactly_once(mesh) -> None:
    flaky = Recorder("payment", fail_first=2)
    m: Mesh = mesh(payment=flaky)
    cid = new_correlation_id()
    m.register(cid, "payment")

    answer = m.client.rollback(cid, reason="checkout failed", source="alert:errors")
    assert answer["started"] is True
    status = m.wait(cid, ("rolled_back", "failed"))

    assert status["state"] == "rolled_back"
    assert flaky.hits["rollback"] == 3  # 500, 500, 200
    assert flaky.count("rollback") == 1
    (payment,) = status["participants"]
    assert payment["state"] == "succeeded" and payment["attempts"] == 3 and payment["last_status"] == 200
    assert status["reason"] == "checkout failed" and status["source"] == "alert:errors"

    # a later duplicate trigger changes nothing and calls nobody
    again = m.client.rollback(cid, reason="again")
    assert again["started"] is False
    time.sleep(0.3)
    assert flaky.hits["rollback"] == 3 and flaky.count("rollback") == 1
    assert m.client.status(cid)["triggers"] == 2


def test_rollback_goes_in_reverse_order_of_participation(mesh) -> None:
    recs = {name: Recorder(name) for name in ("ui", "catalog", "checkout", "payment", "shipping")}
    m: Mesh = mesh(**recs)
    cid = new_correlation_id()
    m.register(cid, "ui", "catalog", "checkout", "payment", "shipping")
    m.register(cid, "catalog")  # re-registration keeps the first place

    m.client.rollback(cid, reason="business failure")
    status = m.wait(cid, ("rolled_back", "failed"))

    assert status["state"] == "rolled_back"
    assert [p["service"] for p in status["participants"]] == ["ui", "catalog", "checkout", "payment", "shipping"]
    times = {name: rec.effects[0][2] for name, rec in recs.items() if rec.effects}
    assert sorted(times, key=times.__getitem__) == ["shipping", "payment", "checkout", "catalog", "ui"]
    assert all(rec.count("rollback") == 1 and rec.hits["rollback"] == 1 for rec in recs.values())


def test_commit_path_calls_commit_in_order_and_then_refuses_a_rollback(mesh) -> None:
    from corrtrace.txmanager import TxManagerError

    recs = {name: Recorder(name) for name in ("orders", "stock")}
    m: Mesh = mesh(**recs)
    cid = new_correlation_id()
    m.register(cid, "orders", "stock")

    assert m.client.commit(cid, source="checkout")["started"] is True
    status = m.wait(cid, ("committed", "failed"))
    assert status["state"] == "committed"
    assert recs["orders"].effects[0][2] <= recs["stock"].effects[0][2]
    assert all(rec.count("commit") == 1 and rec.count("rollback") == 0 for rec in recs.values())

    with pytest.raises(TxManagerError) as refused:
        m.client.rollback(cid)
    assert refused.value.status == 409
    with pytest.raises(TxManagerError) as late:
        m.register(cid, "orders")
    assert late.value.status == 409
    assert all(rec.hits["rollback"] == 0 for rec in recs.values())


def test_get_state_shows_an_open_transaction_and_404_for_an_unknown_one(mesh) -> None:
    from corrtrace.txmanager import TxManagerError

    m: Mesh = mesh(svc=Recorder("svc"))
    cid = new_correlation_id()
    m.register(cid, "svc")
    status = m.client.status(cid)
    assert status["state"] == "open" and status["action"] is None
    assert status["participants"][0]["service"] == "svc"
    assert status["participants"][0]["state"] == "pending"
    with pytest.raises(TxManagerError) as missing:
        m.client.status(new_correlation_id())
    assert missing.value.status == 404


def test_a_participant_joining_after_the_rollback_is_rolled_back_too(mesh) -> None:
    recs = {name: Recorder(name) for name in ("first", "late")}
    m: Mesh = mesh(**recs)
    cid = new_correlation_id()
    m.register(cid, "first")
    m.client.rollback(cid)
    m.wait(cid, ("rolled_back",))
    m.register(cid, "late")
    status = m.wait(cid, ("rolled_back",))
    assert {p["service"]: p["state"] for p in status["participants"]} == {"first": "succeeded", "late": "succeeded"}
    assert recs["first"].hits["rollback"] == 1 and recs["late"].count("rollback") == 1
