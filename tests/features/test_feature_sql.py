"""THE feature SQL on tiny hand-made frames: window edges, label delay, flags, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_orchestration.features import FEATURE_NAMES, HANDBOOK_FEATURES
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.schema import as_raw_transactions
from tests.reference_features import reference_features

T0 = pd.Timestamp("2018-04-10 12:00:00")
SECOND = pd.Timedelta(seconds=1)
DAY = pd.Timedelta(days=1)
DELAY = 7 * DAY
WINDOWS = (1, 7, 30)


def transactions(*rows: tuple) -> pd.DataFrame:
    """Rows of ``(when, customer_id, terminal_id, amount, fraud)``, ids in the given order."""
    frame = pd.DataFrame(
        rows, columns=["tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]
    )
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"])
    frame.insert(0, "transaction_id", range(len(frame)))
    return as_raw_transactions(frame.assign(tx_fraud_scenario=0))


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return DuckDBFeatureEngine(threads=1).compute(frame).set_index("transaction_id")


def last_row(*rows: tuple) -> pd.Series:
    """The features of the last of ``rows``."""
    return features(transactions(*rows)).loc[len(rows) - 1]


@pytest.mark.parametrize("window", WINDOWS)
def test_customer_window_excludes_exactly_w_days_earlier(window: int) -> None:
    row = last_row((T0, 1, 1, 10.0, 0), (T0 + window * DAY, 1, 2, 30.0, 0))
    assert row[f"customer_id_nb_tx_{window}day_window"] == 1
    assert row[f"customer_id_avg_amount_{window}day_window"] == 30.0


@pytest.mark.parametrize("window", WINDOWS)
def test_customer_window_includes_one_second_inside(window: int) -> None:
    row = last_row((T0, 1, 1, 10.0, 0), (T0 + window * DAY - SECOND, 1, 2, 30.0, 0))
    assert row[f"customer_id_nb_tx_{window}day_window"] == 2
    assert row[f"customer_id_avg_amount_{window}day_window"] == 20.0


def test_customer_windows_count_only_the_same_card() -> None:
    row = last_row((T0, 1, 1, 10.0, 0), (T0 + SECOND, 2, 1, 30.0, 0))
    assert row["customer_id_nb_tx_30day_window"] == 1


@pytest.mark.parametrize("window", WINDOWS)
def test_terminal_window_includes_exactly_the_delay_earlier(window: int) -> None:
    row = last_row((T0, 1, 5, 10.0, 1), (T0 + DELAY, 2, 5, 10.0, 0))
    assert row[f"terminal_id_nb_tx_{window}day_window"] == 1
    assert row[f"terminal_id_risk_{window}day_window"] == 1.0


@pytest.mark.parametrize("window", WINDOWS)
def test_terminal_window_excludes_one_second_inside_the_delay(window: int) -> None:
    row = last_row((T0, 1, 5, 10.0, 1), (T0 + DELAY - SECOND, 2, 5, 10.0, 0))
    assert row[f"terminal_id_nb_tx_{window}day_window"] == 0
    assert row[f"terminal_id_risk_{window}day_window"] == 0.0


@pytest.mark.parametrize("window", WINDOWS)
def test_terminal_window_far_edge(window: int) -> None:
    """(t - delay - w, t - delay]: exactly delay + w earlier is out, one second later is in."""
    start = T0 + (7 + window) * DAY
    out = last_row((T0, 1, 5, 10.0, 1), (start, 2, 5, 10.0, 0))
    inside = last_row((T0, 1, 5, 10.0, 1), (start - SECOND, 2, 5, 10.0, 0))
    assert out[f"terminal_id_nb_tx_{window}day_window"] == 0
    assert inside[f"terminal_id_nb_tx_{window}day_window"] == 1


def test_terminal_risk_is_the_fraud_share_of_the_window() -> None:
    row = last_row(
        (T0, 1, 5, 10.0, 1),
        (T0 + SECOND, 2, 5, 10.0, 0),
        (T0 + 2 * SECOND, 3, 5, 10.0, 0),
        (T0 + 3 * SECOND, 4, 5, 10.0, 1),
        (T0 + DELAY + 3 * SECOND, 5, 5, 10.0, 0),
    )
    assert row["terminal_id_nb_tx_1day_window"] == 4
    assert row["terminal_id_risk_1day_window"] == 0.5


def test_terminal_risk_is_zero_when_the_window_is_empty() -> None:
    row = last_row((T0, 1, 5, 10.0, 1))
    for window in WINDOWS:
        assert row[f"terminal_id_nb_tx_{window}day_window"] == 0
        assert row[f"terminal_id_risk_{window}day_window"] == 0.0


@pytest.mark.parametrize(
    ("when", "weekend", "night"),
    [
        ("2018-03-30 23:59:59", 0, 0),  # Friday
        ("2018-03-31 00:00:00", 1, 1),  # Saturday
        ("2018-04-01 06:59:59", 1, 1),  # Sunday
        ("2018-04-01 07:00:00", 1, 0),
        ("2018-04-01 23:59:59", 1, 0),
        ("2018-04-02 00:00:00", 0, 1),  # Monday
        ("2018-04-02 12:00:00", 0, 0),
    ],
)
def test_weekend_and_night_flags(when: str, weekend: int, night: int) -> None:
    row = last_row((pd.Timestamp(when), 1, 1, 10.0, 0))
    assert (row["tx_during_weekend"], row["tx_during_night"]) == (weekend, night)


def random_transactions(n: int = 400, days: int = 50, seed: int = 0) -> pd.DataFrame:
    """Few cards and terminals so windows fill up; every second distinct (no ties)."""
    rng = np.random.default_rng(seed)
    seconds = rng.choice(days * 86_400, size=n, replace=False)
    seconds.sort()
    return transactions(
        *zip(
            T0 + pd.to_timedelta(seconds, unit="s"),
            rng.integers(0, 6, n),
            rng.integers(0, 4, n),
            rng.uniform(1, 200, n).round(2),
            (rng.random(n) < 0.2).astype(int),
            strict=True,
        )
    )


def test_no_feature_reads_a_later_event() -> None:
    frame = random_transactions()
    before = features(frame)
    last = frame.iloc[-1]
    future = frame.iloc[[-1, -1]].assign(
        transaction_id=[len(frame), len(frame) + 1],
        tx_datetime=[last["tx_datetime"] + SECOND, last["tx_datetime"] + DAY],
        tx_time_seconds=[last["tx_time_seconds"] + 1, last["tx_time_seconds"] + 86_400],
        tx_amount=[1e6, 1e6],
        tx_fraud=[1, 1],
    )
    after = features(as_raw_transactions(pd.concat([frame, future], ignore_index=True)))
    after = after.loc[before.index]
    pd.testing.assert_frame_equal(after, before, check_exact=True)


def test_every_prefix_of_the_data_gives_the_same_features() -> None:
    frame = random_transactions()
    full = features(frame)
    for cut in (50, 200, 399):
        prefix = features(frame.iloc[:cut])
        pd.testing.assert_frame_equal(prefix, full.loc[prefix.index], check_exact=True)


def test_the_reference_agrees_when_no_second_is_shared() -> None:
    frame = random_transactions()
    ours = features(frame)[HANDBOOK_FEATURES]
    theirs = reference_features(frame).loc[ours.index]
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, rtol=1e-9)


def test_every_feature_name_is_an_output_column() -> None:
    columns = set(features(random_transactions(n=20)).columns)
    assert set(FEATURE_NAMES) <= columns


def test_features_do_not_depend_on_the_row_order_of_same_second_transactions() -> None:
    """Same-second transactions of a card are peers whose order no engine fixes (a parallel
    sort puts them either way round). A sum of amounts in float64 depends on that order;
    the SQL's sums of whole cents do not, so a re-run gives the same bits."""
    frame = random_transactions(n=600, days=40, seed=3)
    peers = frame.iloc[::3].assign(
        transaction_id=lambda peers: peers["transaction_id"] + len(frame),
        tx_amount=lambda peers: (peers["tx_amount"] * 1.37 + 0.01).round(2),
    )
    both = as_raw_transactions(pd.concat([frame, peers], ignore_index=True))
    forwards = features(both)
    backwards = features(both.iloc[::-1].reset_index(drop=True)).loc[forwards.index]
    pd.testing.assert_frame_equal(backwards, forwards, check_exact=True)
