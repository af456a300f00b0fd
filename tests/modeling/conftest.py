"""Small synthetic transaction frames: scikit-learn's classification data dressed as card
transactions (a card id, a timestamp, a fraud label around 3 %)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

FEATURES = [f"f{i}" for i in range(8)]


def synthetic_transactions(n: int = 6000, seed: int = 0, days: int = 14) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=n,
        n_features=len(FEATURES),
        n_informative=5,
        weights=[0.97],
        flip_y=0.01,
        class_sep=0.8,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["customer_id"] = rng.integers(0, 400, n)
    seconds = np.sort(rng.integers(0, days * 86400, n))
    frame["tx_datetime"] = pd.Timestamp("2018-07-01") + pd.to_timedelta(seconds, unit="s")
    frame["tx_fraud"] = y
    return frame


def split_by_day(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train on the first half of the days, validate on the next quarter, test on the rest."""
    day = (frame["tx_datetime"] - frame["tx_datetime"].min()).dt.days
    last = day.max() + 1
    train = frame[day < last // 2]
    valid = frame[(day >= last // 2) & (day < 3 * last // 4)]
    test = frame[day >= 3 * last // 4]
    return train, valid, test


@pytest.fixture(scope="session")
def splits() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return split_by_day(synthetic_transactions())
