"""THE feature SQL against the independent pandas reference, on all 183 handbook days.

The only accepted differences come from transactions that share a second with another
transaction of the same card (customer features) or terminal (terminal features): pandas
rolls over rows and misses a same-second peer that follows in row order, the SQL's RANGE
frames see all peers. Such rows must stay rare (under 0.01 % of the rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_orchestration.features import FEATURES, HANDBOOK_FEATURES
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from tests.reference_features import read_handbook, reference_features

HANDBOOK_RAW = Path(__file__).resolve().parents[2].parent / "shared/datasets/fraud-handbook/raw"
HANDBOOK_DAYS = 183
MAX_DIFFERING_SHARE = 0.0001
RELATIVE_TOLERANCE = 1e-9
KINDS = {feature.name: feature.kind for feature in FEATURES}

pytestmark = [
    pytest.mark.handbook,
    pytest.mark.slow,
    pytest.mark.skipif(
        not HANDBOOK_RAW.is_dir(), reason=f"handbook data set not found at {HANDBOOK_RAW}"
    ),
]


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    assert len(list(HANDBOOK_RAW.glob("*.parquet"))) == HANDBOOK_DAYS
    return read_handbook(HANDBOOK_RAW).set_index("transaction_id", drop=False)


@pytest.fixture(scope="module")
def differing(transactions: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per handbook feature: does the SQL disagree with the reference?"""
    engine = DuckDBFeatureEngine().compute(transactions.reset_index(drop=True))
    engine = engine.set_index("transaction_id").loc[transactions.index]
    reference = reference_features(transactions.reset_index(drop=True)).loc[transactions.index]
    result = {}
    for name in HANDBOOK_FEATURES:
        ours, theirs = engine[name].to_numpy(), reference[name].to_numpy()
        if KINDS[name] in ("average", "ratio"):
            result[name] = ~np.isclose(ours, theirs, rtol=RELATIVE_TOLERANCE, atol=0.0)
        else:
            result[name] = ours != theirs
    return pd.DataFrame(result, index=transactions.index)


def _shares_a_second(transactions: pd.DataFrame, key: str) -> pd.Series:
    return transactions.duplicated([key, "tx_time_seconds"], keep=False)


def test_every_row_is_compared(transactions: pd.DataFrame, differing: pd.DataFrame) -> None:
    assert transactions.index.is_unique
    assert len(differing) == len(transactions) == 1_754_155


@pytest.mark.parametrize("name", [n for n in HANDBOOK_FEATURES if KINDS[n] in ("raw", "flag")])
def test_row_features_match_everywhere(differing: pd.DataFrame, name: str) -> None:
    assert not differing[name].any()


@pytest.mark.parametrize(
    ("prefix", "key"), [("customer_id_", "customer_id"), ("terminal_id_", "terminal_id")]
)
def test_window_features_differ_only_on_same_second_ties(
    transactions: pd.DataFrame, differing: pd.DataFrame, prefix: str, key: str
) -> None:
    columns = [name for name in HANDBOOK_FEATURES if name.startswith(prefix)]
    rows = differing[columns].any(axis="columns")
    ties = _shares_a_second(transactions, key)
    outside_ties = differing.index[rows & ~ties]
    assert outside_ties.empty, (
        f"{len(outside_ties)} rows differ without a same-second {key} tie, "
        f"e.g. transaction ids {outside_ties[:10].tolist()}; per feature: "
        f"{differing.loc[outside_ties, columns].sum().to_dict()}"
    )


def test_differing_rows_are_rare(differing: pd.DataFrame) -> None:
    share = differing.any(axis="columns").mean()
    assert share < MAX_DIFFERING_SHARE
