"""The rules answer when no model is loaded, the model fails, the time budget would be missed
or the online store is unavailable -- and the service keeps answering throughout."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from fraud_orchestration.serving.app import ServingConfig, create_app
from fraud_orchestration.serving.rules import Condition, Rule, RuleSet
from tests.serving.conftest import SCORED_DAY, as_request

CHEAP = {
    "transaction_id": 20_000_001,
    "tx_datetime": "2018-05-10T12:00:00",
    "customer_id": 5,
    "terminal_id": 7,
    "tx_amount": 12.0,
}
EXPENSIVE = {**CHEAP, "transaction_id": 20_000_002, "tx_amount": 950.0}


def post(url: str, payload, **params) -> dict:
    response = httpx.post(f"{url}/invocations", json=payload, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_rules_answer_when_no_model_is_loaded(start_server) -> None:
    server = start_server(model_dir=None)
    assert httpx.get(f"{server.url}/ping").json()["fallback_only"] is True
    cheap, expensive = post(server.url, [CHEAP, EXPENSIVE])["predictions"]
    for answer in (cheap, expensive):
        assert answer["fallback"] is True
        assert answer["fallback_reason"] == "no_model"
        assert answer["model_version"] is None
        assert answer["rules_version"].startswith("rules-")
    assert cheap["decision"] == "genuine" and cheap["reasons"] == []
    assert expensive["decision"] == "fraud"
    assert expensive["reasons"] == [{"rule": "high_amount", "score": 0.9}]


def test_terminal_risk_rule_uses_the_online_features(start_server, lake) -> None:
    day = lake.day(SCORED_DAY)
    risky = day[
        (day["terminal_id_risk_7day_window"] >= 0.5)
        & (day["terminal_id_nb_tx_7day_window"] >= 2)
        & (day["tx_amount"] <= 220)
    ]
    assert len(risky), "the simulation should compromise some terminals"
    server = start_server(model_dir=None)
    answer = post(server.url, as_request(risky.iloc[0]))
    assert answer["decision"] == "fraud"
    assert [reason["rule"] for reason in answer["reasons"]] == ["risky_terminal"]


class Exploding:
    """Stands in for a slot's predictor (its XGBoost calls)."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor

    def scores(self, x):
        raise RuntimeError("the model broke")

    def contributions(self, x, approximate):
        raise RuntimeError("the model broke")


class ReturnsNaN(Exploding):
    def scores(self, x):
        return np.full(len(x), np.nan, dtype=np.float32)


class Slow(Exploding):
    def scores(self, x):
        time.sleep(2.0)
        return self.predictor.scores(x)

    def contributions(self, x, approximate):
        return self.predictor.contributions(x, approximate)


@pytest.mark.parametrize("broken", [Exploding, ReturnsNaN])
def test_rules_answer_when_the_model_fails(start_server, broken) -> None:
    server = start_server()
    slot = server.service.active
    healthy = slot.predictor
    slot.predictor = broken(healthy)
    try:
        answer = post(server.url, EXPENSIVE)
        assert answer["fallback"] is True and answer["fallback_reason"] == "model_error"
        assert answer["decision"] == "fraud"
        assert server.service.counters["model_errors"] == 1
    finally:
        slot.predictor = healthy
    answer = post(server.url, {**CHEAP, "transaction_id": 20_000_003})
    assert answer["fallback"] is False and answer["model_version"] == "v1"


def test_rules_answer_within_the_budget_when_the_model_is_slow(start_server) -> None:
    server = start_server(budget_ms=300)
    slot = server.service.active
    healthy = slot.predictor
    slot.predictor = Slow(healthy)
    try:
        started = time.perf_counter()
        answer = post(server.url, EXPENSIVE, features="true")
        elapsed = time.perf_counter() - started
        assert answer["fallback"] is True and answer["fallback_reason"] == "time_budget"
        assert answer["decision"] == "fraud"
        assert answer["features"] is not None  # the features were ready: rules used them
        assert elapsed < 1.5, f"answered after {elapsed:.3f} s"
    finally:
        slot.predictor = healthy


def test_rules_answer_when_the_model_would_miss_the_budget(start_server) -> None:
    server = start_server()
    server.service.active.per_call_ms = 10_000.0  # as if it measured that slow at load time
    answer = post(server.url, CHEAP)
    assert answer["fallback"] is True and answer["fallback_reason"] == "time_budget"


def test_rules_answer_when_the_online_store_is_missing(start_server, tmp_path) -> None:
    server = start_server(online_store_path=str(tmp_path / "missing.sqlite"))
    cheap, expensive = post(server.url, [CHEAP, EXPENSIVE])["predictions"]
    assert cheap["fallback_reason"] == expensive["fallback_reason"] == "online_store_unavailable"
    assert expensive["decision"] == "fraud" and cheap["decision"] == "genuine"
    status = httpx.get(f"{server.url}/admin/status").json()
    assert status["online_store"]["available"] is False
    assert "missing.sqlite" in status["online_store"]["error"]


def test_configured_rules(start_server) -> None:
    rules = RuleSet(
        rules=(
            Rule("tiny_amount", 0.7, (Condition("tx_amount", "<", 15.0),)),
            Rule("night", 0.4, (Condition("tx_during_night", ">=", 1.0),)),
        ),
        threshold=0.6,
        base_score=0.05,
    )
    server = start_server(model_dir=None, rules=rules)
    cheap, expensive = post(server.url, [CHEAP, EXPENSIVE])["predictions"]
    assert cheap["decision"] == "fraud" and cheap["score"] == 0.7
    assert [r["rule"] for r in cheap["reasons"]] == ["tiny_amount"]
    assert expensive["decision"] == "genuine" and expensive["score"] == 0.05
    assert cheap["threshold"] == 0.6


def test_rule_sets_are_checked() -> None:
    loaded = RuleSet.from_dict(
        {
            "threshold": 0.3,
            "rules": [
                {
                    "name": "big",
                    "score": 0.5,
                    "when": [{"feature": "tx_amount", "op": ">", "value": 5}],
                }
            ],
        }
    )
    assert loaded.evaluate({"tx_amount": 6.0}).reasons == ["big"]
    assert loaded.evaluate({"tx_amount": 5.0}).decision is False
    assert loaded.evaluate({}).reasons == []  # a rule whose input is missing is skipped
    with pytest.raises(ValueError, match="operator"):
        RuleSet.from_dict(
            {
                "rules": [
                    {
                        "name": "x",
                        "score": 1,
                        "when": [{"feature": "tx_amount", "op": "=", "value": 1}],
                    }
                ]
            }
        )
    with pytest.raises(ValueError, match="unknown rule-set keys"):
        RuleSet.from_dict({"rulez": []})
    with pytest.raises(ValueError, match="unknown features"):
        create_app(
            ServingConfig(
                rules=RuleSet(rules=(Rule("typo", 0.9, (Condition("tx_amout", ">", 1.0),)),))
            )
        )
