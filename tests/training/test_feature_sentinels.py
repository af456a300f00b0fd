"""The documented sentinels and edges of the features beyond the handbook's 15, on tiny
hand-made frames (the GX suite allows no nulls, so "no history" has a value)."""

from __future__ import annotations

import pandas as pd
import pytest

from fraud_orchestration.features import (
    RATIO_SENTINEL,
    SECONDS_SENTINEL_30_DAYS,
    SECONDS_SENTINEL_37_DAYS,
)
from fraud_orchestration.schema import as_raw_transactions

from .conftest import compute_features

T0 = pd.Timestamp("2018-05-10 12:00:00")
DAY = pd.Timedelta(days=1)
SECOND = pd.Timedelta(seconds=1)


def last_row(*rows: tuple) -> pd.Series:
    """Features of the last of ``rows``: ``(when, customer_id, terminal_id, amount, fraud)``."""
    frame = pd.DataFrame(
        rows, columns=["tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]
    )
    frame.insert(0, "transaction_id", range(len(frame)))
    features = compute_features(as_raw_transactions(frame.assign(tx_fraud_scenario=0)))
    return features.set_index("transaction_id").loc[len(rows) - 1]


def test_a_first_transaction_gets_the_sentinels() -> None:
    row = last_row((T0, 1, 1, 40.0, 0))
    assert row["customer_id_seconds_since_previous_tx"] == SECONDS_SENTINEL_30_DAYS
    for name in (
        "customer_id_amount_ratio_previous_30day_window",
        "customer_id_amount_ratio_7to30day_window",
        "customer_id_amount_ratio_14to30day_window",
        "customer_id_amount_to_max_30day_window",
    ):
        assert row[name] == RATIO_SENTINEL, name
    for window in (1, 7, 30):
        assert row[f"customer_id_amount_ratio_{window}day_window"] == 1.0
    assert row["customer_terminal_nb_tx_30day_window"] == 1
    assert row["customer_terminal_seen_30day_window"] == 0
    for name in ("last_fraud", "first_fraud", "last_genuine"):
        assert row[f"terminal_id_seconds_since_{name}"] == SECONDS_SENTINEL_37_DAYS
    assert row["terminal_id_last_label_fraud"] == 0
    assert row["terminal_id_nb_fraud_30day_window"] == 0
    assert row["terminal_id_nb_tx_undelayed_1day_window"] == 1


def test_a_zero_amount_history_gives_the_ratio_sentinel_not_a_division_by_zero() -> None:
    row = last_row((T0, 1, 1, 0.0, 0), (T0 + 20 * DAY, 1, 1, 25.0, 0))
    assert row["customer_id_amount_ratio_previous_30day_window"] == RATIO_SENTINEL
    assert row["customer_id_amount_to_max_30day_window"] == RATIO_SENTINEL
    zero = last_row((T0, 1, 1, 0.0, 0))
    assert zero["customer_id_amount_ratio_30day_window"] == 1.0


def test_the_card_history_features() -> None:
    row = last_row(
        (T0, 1, 1, 10.0, 0),
        (T0 + 15 * DAY, 1, 2, 30.0, 0),
        (T0 + 25 * DAY, 1, 1, 100.0, 0),
    )
    assert row["customer_id_seconds_since_previous_tx"] == 10 * 86_400
    assert row["customer_id_amount_ratio_previous_30day_window"] == pytest.approx(100 / 20)
    assert row["customer_id_amount_ratio_7to30day_window"] == pytest.approx(100 / 20)
    assert row["customer_id_amount_ratio_14to30day_window"] == pytest.approx(100 / 10)
    assert row["customer_id_amount_to_max_30day_window"] == pytest.approx(100 / 30)
    assert row["customer_id_amount_ratio_30day_window"] == pytest.approx(100 / 140 * 3)
    assert row["customer_terminal_nb_tx_30day_window"] == 2
    assert row["customer_terminal_seen_30day_window"] == 1


def test_the_card_history_ends_30_days_back() -> None:
    row = last_row((T0, 1, 1, 10.0, 0), (T0 + 30 * DAY, 1, 1, 50.0, 0))
    assert row["customer_id_seconds_since_previous_tx"] == SECONDS_SENTINEL_30_DAYS
    assert row["customer_terminal_seen_30day_window"] == 0
    inside = last_row((T0, 1, 1, 10.0, 0), (T0 + 30 * DAY - SECOND, 1, 1, 50.0, 0))
    assert inside["customer_id_seconds_since_previous_tx"] == 30 * 86_400 - 1
    assert inside["customer_terminal_seen_30day_window"] == 1


def test_the_terminal_label_history_sits_behind_the_delay() -> None:
    history = (
        (T0, 1, 5, 10.0, 0),
        (T0 + DAY, 2, 5, 10.0, 1),
        (T0 + 2 * DAY, 3, 5, 10.0, 1),
    )
    row = last_row(*history, (T0 + 9 * DAY, 4, 5, 10.0, 0))
    assert row["terminal_id_seconds_since_last_fraud"] == 7 * 86_400
    assert row["terminal_id_seconds_since_first_fraud"] == 8 * 86_400
    assert row["terminal_id_seconds_since_last_genuine"] == 9 * 86_400
    assert row["terminal_id_last_label_fraud"] == 1
    assert row["terminal_id_nb_fraud_30day_window"] == 2
    assert row["terminal_id_nb_fraud_7day_window"] == 2
    assert row["terminal_id_nb_tx_undelayed_7day_window"] == 1  # T0 + 2 days is 7 days back: out
    # One second earlier the last fraud is still inside the delay: not known yet.
    early = last_row(*history, (T0 + 9 * DAY - SECOND, 4, 5, 10.0, 0))
    assert early["terminal_id_seconds_since_last_fraud"] == 8 * 86_400 - 1
    assert early["terminal_id_nb_fraud_30day_window"] == 1
