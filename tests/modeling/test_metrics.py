from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_orchestration.modeling.metrics import (
    card_precision_at_k,
    evaluate,
    precision_recall_points,
)


def reference_card_precision(
    rows: list[tuple[int, int, float, int]], k: int, drop_known_frauds: bool
) -> float:
    """Card Precision@k spelt out with plain loops over (day, card, score, label) rows."""
    days = sorted({day for day, _, _, _ in rows})
    detected: set[int] = set()
    total = 0.0
    for day in days:
        best_score: dict[int, float] = {}
        best_label: dict[int, int] = {}
        for row_day, card, score, label in rows:
            if row_day != day or (drop_known_frauds and card in detected):
                continue
            best_score[card] = max(best_score.get(card, -math.inf), score)
            best_label[card] = max(best_label.get(card, 0), label)
        ranked = sorted(best_score, key=lambda card: (-best_score[card], card))
        hits = [card for card in ranked[:k] if best_label[card] == 1]
        total += len(hits) / k
        detected.update(hits)
    return total / len(days)


def frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["day", "customer_id", "score", "tx_fraud"])


# Few days, few cards and five score levels: ties and cards seen on several days are common.
rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 4),
        st.integers(0, 15),
        st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy, k=st.integers(1, 12), drop=st.booleans())
def test_card_precision_matches_the_plain_reference(rows, k, drop) -> None:
    expected = reference_card_precision(rows, k, drop)
    assert card_precision_at_k(frame(rows), k=k, drop_known_frauds=drop) == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(rows=rows_strategy, k=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_card_precision_ignores_row_order(rows, k, seed) -> None:
    df = frame(rows)
    shuffled = df.sample(frac=1.0, random_state=np.random.default_rng(seed))
    assert card_precision_at_k(shuffled, k=k) == card_precision_at_k(df, k=k)


@pytest.mark.parametrize("seed", range(5))
def test_card_precision_on_larger_random_days(seed) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    rows = list(
        zip(
            rng.integers(0, 7, n).tolist(),
            rng.integers(0, 400, n).tolist(),
            rng.integers(0, 50, n).astype(float).tolist(),
            (rng.random(n) < 0.05).astype(int).tolist(),
            strict=True,
        )
    )
    for drop in (True, False):
        expected = reference_card_precision(rows, 100, drop)
        assert card_precision_at_k(frame(rows), drop_known_frauds=drop) == pytest.approx(expected)


def test_worked_example_drops_only_detected_cards() -> None:
    """k = 1. Day 0: card 1 (fraud, 0.9) is detected; card 2 (fraud, 0.8) is not in the top 1.

    Day 1: card 1 is dropped, so card 2 (0.7) outranks card 3 (0.6, genuine): 1/1.
    Without dropping, card 1 (0.95) would rank first again: also 1/1, counted twice.
    Day 2: without dropping, card 1 again tops card 2 -- still a hit; with dropping, cards 1
    and 2 are both known and genuine card 3 is left: 0/1.
    """
    rows = [
        (0, 1, 0.9, 1),
        (0, 2, 0.8, 1),
        (1, 1, 0.95, 1),
        (1, 2, 0.7, 1),
        (1, 3, 0.6, 0),
        (2, 1, 0.9, 1),
        (2, 2, 0.5, 1),
        (2, 3, 0.4, 0),
    ]
    assert card_precision_at_k(frame(rows), k=1) == pytest.approx((1 + 1 + 0) / 3)
    assert card_precision_at_k(frame(rows), k=1, drop_known_frauds=False) == 1.0


def test_ties_go_to_the_lower_card_id() -> None:
    rows = [(0, 7, 0.5, 0), (0, 3, 0.5, 1), (0, 5, 0.5, 0)]
    assert card_precision_at_k(frame(rows), k=1) == 1.0
    rows = [(0, 2, 0.5, 0), (0, 3, 0.5, 1)]
    assert card_precision_at_k(frame(rows), k=1) == 0.0


def test_a_card_takes_its_max_score_and_max_label_per_day() -> None:
    # Card 1's fraud is a low-score transaction, yet the card ranks by its 0.9 transaction.
    rows = [(0, 1, 0.9, 0), (0, 1, 0.1, 1), (0, 2, 0.8, 1)]
    assert card_precision_at_k(frame(rows), k=1) == 1.0


def test_days_come_from_tx_datetime_when_there_is_no_day_column() -> None:
    rng = np.random.default_rng(0)
    rows = [(int(d), int(c), float(s), int(y)) for d, c, s, y in rng.integers(0, 4, (200, 4))]
    df = frame(rows)
    seconds = rng.integers(0, 86400, len(df))
    df["tx_datetime"] = (
        pd.Timestamp("2018-08-08")
        + pd.to_timedelta(df["day"], unit="D")
        + pd.to_timedelta(seconds, unit="s")
    )
    assert card_precision_at_k(df.drop(columns="day"), k=3) == card_precision_at_k(df, k=3)


def test_divides_by_k_even_when_a_day_has_fewer_cards() -> None:
    assert card_precision_at_k(frame([(0, 1, 0.9, 1)]), k=100) == 0.01


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        card_precision_at_k(frame([(0, 1, 0.5, 1)]), k=0)
    with pytest.raises(ValueError, match="no predictions"):
        card_precision_at_k(frame([]))
    with pytest.raises(ValueError, match="missing scores"):
        card_precision_at_k(frame([(0, 1, float("nan"), 1)]))
    with pytest.raises(ValueError, match="'day' or a 'tx_datetime'"):
        card_precision_at_k(frame([(0, 1, 0.5, 1)]).drop(columns="day"))


def test_evaluate_reports_the_three_handbook_metrics() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    df = pd.DataFrame(
        {
            "day": rng.integers(0, 3, n),
            "customer_id": rng.integers(0, 300, n),
            "score": rng.random(n),
            "tx_fraud": (rng.random(n) < 0.1).astype(int),
        }
    )
    result = evaluate(df)
    assert set(result) == {"auc_roc", "avg_precision", "card_precision_at_100"}
    assert result["auc_roc"] == roc_auc_score(df["tx_fraud"], df["score"])
    assert result["avg_precision"] == average_precision_score(df["tx_fraud"], df["score"])
    assert result["card_precision_at_100"] == card_precision_at_k(df)


def test_precision_recall_points() -> None:
    points = precision_recall_points(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert list(points.columns) == ["threshold", "precision", "recall"]
    assert points["recall"].is_monotonic_decreasing
    last = points.iloc[-1]
    assert np.isnan(last["threshold"]) and last["precision"] == 1.0 and last["recall"] == 0.0
