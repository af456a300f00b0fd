"""An independent pandas implementation of the handbook's 15 baseline features.

Written the way the Fraud Detection Handbook computes them (per card and per terminal,
``rolling('<w>d')`` on a DatetimeIndex), so that the SQL in
``fraud_orchestration/features/transaction_features.sql`` can be checked against something
obviously correct. Slow on purpose: clarity over speed.

One known, accepted difference: pandas rolls over rows, so a transaction does not see a
transaction of the same card in the same second that comes after it in row order, while the
SQL's RANGE frames treat such same-second transactions as peers that see each other.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraud_orchestration.features import HANDBOOK_FEATURES
from fraud_orchestration.schema import as_raw_transactions

WINDOWS_DAYS = (1, 7, 30)
DELAY_DAYS = 7


def read_handbook(raw_dir: Path) -> pd.DataFrame:
    """Every daily handbook file in ``raw_dir``, in the raw schema, in file (day) order."""
    frames = [pd.read_parquet(path) for path in sorted(raw_dir.glob("*.parquet"))]
    return as_raw_transactions(pd.concat(frames, ignore_index=True))


def _customer_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """One card's transactions, sorted by time: count and mean amount over (t - w, t]."""
    amounts = transactions.set_index("tx_datetime")["tx_amount"]
    features = {}
    for window in WINDOWS_DAYS:
        rolling = amounts.rolling(f"{window}d")
        count = rolling.count()
        features[f"customer_id_nb_tx_{window}day_window"] = count.to_numpy()
        features[f"customer_id_avg_amount_{window}day_window"] = (rolling.sum() / count).to_numpy()
    return pd.DataFrame(features, index=transactions.index)


def _terminal_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """One terminal's transactions, sorted by time: count and fraud share over
    (t - delay - w, t - delay], as the rolling window of delay + w days minus that of
    delay days."""
    frauds = transactions.set_index("tx_datetime")["tx_fraud"]
    delay = frauds.rolling(f"{DELAY_DAYS}d")
    delay_frauds, delay_count = delay.sum(), delay.count()
    features = {}
    for window in WINDOWS_DAYS:
        longer = frauds.rolling(f"{DELAY_DAYS + window}d")
        count = longer.count() - delay_count
        risk = ((longer.sum() - delay_frauds) / count).fillna(0.0)
        features[f"terminal_id_nb_tx_{window}day_window"] = count.to_numpy()
        features[f"terminal_id_risk_{window}day_window"] = risk.to_numpy()
    return pd.DataFrame(features, index=transactions.index)


def reference_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """The 15 handbook features of every row, indexed by ``transaction_id``, with the
    column names of ``HANDBOOK_FEATURES``.

    ``transactions`` is in the raw schema (see :func:`as_raw_transactions`).
    """
    ordered = transactions.sort_values(["tx_datetime", "transaction_id"], kind="stable")
    ordered = ordered.set_index("transaction_id")
    columns = ["tx_datetime", "tx_amount", "tx_fraud"]
    customer = ordered.groupby("customer_id", group_keys=False)[columns].apply(_customer_features)
    terminal = ordered.groupby("terminal_id", group_keys=False)[columns].apply(_terminal_features)
    flags = pd.DataFrame(
        {
            "tx_amount": ordered["tx_amount"],
            "tx_during_weekend": (ordered["tx_datetime"].dt.weekday >= 5).astype(int),
            "tx_during_night": (ordered["tx_datetime"].dt.hour <= 6).astype(int),
        }
    )
    features = flags.join(customer).join(terminal)
    for column in features.columns:
        if "_nb_tx_" in column:
            features[column] = features[column].astype("int64")
    return features[HANDBOOK_FEATURES]
