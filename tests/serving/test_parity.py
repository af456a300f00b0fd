"""Online/offline parity: the features the service computes for day D+1's transactions equal
the offline feature store's (THE SQL over all data), with the online store as of day D.

The online store as of the end of day D lacks D+1's earlier transactions, which the windows
of a later D+1 transaction reach. The service appends every scored transaction to its
recent-events buffer (a stand-in for a production online store's streaming update), so
replaying day D+1 in time order gives every transaction all the events before it.

One inherent difference is avoided, not hidden: the SQL's RANGE frames make transactions of
the same card in the same second see each other, while a live service cannot see a
transaction that has not arrived yet. The replay therefore sends each second's transactions
together in one request (a list), as the offline semantics assume.
"""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from fraud_orchestration.features import FEATURES
from fraud_orchestration.modeling.trainer import TrainedModel
from tests.serving.conftest import SCORED_DAY, as_request

MIN_TRANSACTIONS = 1000


def requests_in_time_order(day: pd.DataFrame, singles: int, chunk: int) -> list[list[dict]]:
    """Same-second groups, one request each for the first ``singles`` transactions, then
    consecutive groups packed into requests of up to ``chunk`` transactions."""
    groups = [
        [as_request(row) for row in group.to_dict("records")]
        for _, group in day.groupby("tx_time_seconds", sort=True)
    ]
    requests: list[list[dict]] = []
    sent = 0
    for group in groups:
        if sent < singles or not requests or len(requests[-1]) + len(group) > chunk:
            requests.append(list(group))
        else:
            requests[-1].extend(group)
        sent += len(group)
    return requests


def replay(url: str, requests: list[list[dict]]) -> dict[int, dict]:
    answers: dict[int, dict] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for batch in requests:
            payload = batch[0] if len(batch) == 1 else batch
            response = client.post("/invocations", params={"features": "true"}, json=payload)
            assert response.status_code == 200, response.text
            body = response.json()
            for answer in [body] if len(batch) == 1 else body["predictions"]:
                answers[answer["transaction_id"]] = answer
    return answers


def mismatches(offline: pd.DataFrame, answers: dict[int, dict]) -> list[str]:
    problems = []
    for row in offline.to_dict("records"):
        online = answers[int(row["transaction_id"])]["features"]
        for feature in FEATURES:
            want, got = float(row[feature.name]), online[feature.name]
            if got != want:
                problems.append(f"{row['transaction_id']} {feature.name}: {got!r} != {want!r}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize(
    ("engine", "singles", "chunk"),
    [
        ("compiled", 10**9, 0),  # every second's transactions on their own
        ("sqlite", 10**9, 0),
        ("duckdb", 300, 50),  # the first 300 alone, then chunks of up to 50
        ("auto", 600, 200),  # the row evaluator alone, the vectorised one in chunks
    ],
)
def test_online_features_equal_the_offline_store(
    start_server, lake, engine: str, singles: int, chunk: int
) -> None:
    offline = lake.day(SCORED_DAY)
    assert len(offline) >= MIN_TRANSACTIONS
    server = start_server(engine=engine, budget_ms=5000, budget_ms_per_extra_row=50)
    status = httpx.get(f"{server.url}/admin/status").json()
    assert status["features"]["engine"] == engine
    assert status["features"]["engine_note"] is None
    assert status["features"]["compiled"] is (engine in ("auto", "compiled"))
    assert status["features"]["sqlite"] is (engine == "sqlite")

    answers = replay(server.url, requests_in_time_order(offline, singles, chunk))

    assert len(answers) == len(offline)
    assert not any(a["fallback"] for a in answers.values())
    problems = mismatches(offline, answers)
    assert not problems, f"{len(problems)} mismatches, e.g. {problems[:10]}"

    model = TrainedModel.load(lake.model_dir)
    expected = model.predict(offline)
    got = [answers[int(i)]["score"] for i in offline["transaction_id"]]
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-6


def test_without_the_recent_events_later_transactions_would_differ(start_server, lake) -> None:
    """The control: a service that forgets what it scored misses D+1's earlier events."""
    offline = lake.day(SCORED_DAY)
    server = start_server(engine="sqlite", budget_ms=5000, budget_ms_per_extra_row=50)
    server.service.recent.add = lambda transactions: None  # never remembers
    answers = replay(server.url, requests_in_time_order(offline, 0, 50))
    wrong = {problem.split()[0] for problem in mismatches(offline, answers)}
    assert len(wrong) > len(offline) // 4
