"""No leakage: the train frame ignores every later label, and no feature reads the future.

On a small simulated lake (``conftest.SIMULATION``), features are recomputed from modified
raw data and compared with the originals, for EVERY feature in ``FEATURES``:

* labels (``tx_fraud``) changed inside the delay and test windows leave the train frame that
  ``build_training_set`` produces unchanged (while they do reach the test frame's features);
* events after a cut time T changed (time, amount, terminal, label, scenario) or appended
  leave every feature of the rows at or before T unchanged;
* labels changed after T - 7 days (inside the label delay) leave every feature of the rows
  at or before T unchanged;
* ``tx_fraud_scenario`` (how the simulator made a fraud) changes no feature anywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_orchestration.features import FEATURES, feature_definition_version
from fraud_orchestration.training.dataset import build_training_set
from fraud_orchestration.training.windows import TrainingWindows

from .conftest import TRAIN_START, compute_features, day_of

DELAY_SECONDS = 7 * 86_400
KINDS = {feature.name: feature.kind for feature in FEATURES}
NAMES = [feature.name for feature in FEATURES]
LABEL_FEATURES = [
    name
    for name in NAMES
    if name.startswith("terminal_id_risk_") or "fraud" in name or "genuine" in name
]
"""The features that read labels (all behind the 7-day delay)."""


def differs(before: pd.Series, after: pd.Series, name: str) -> pd.Series:
    """Row-wise: does ``name`` differ (exactly, or beyond 1e-9 for averages and ratios)?"""
    if KINDS[name] in ("average", "ratio", "raw"):
        return pd.Series(
            ~np.isclose(before.to_numpy(float), after.to_numpy(float), rtol=1e-9, atol=0.0),
            index=before.index,
        )
    return before != after


def by_id(features: pd.DataFrame) -> pd.DataFrame:
    return features.set_index("transaction_id").sort_index()


@pytest.fixture(scope="module")
def cut_seconds(raw: pd.DataFrame) -> int:
    """A cut time T in the middle of the lake, at a transaction's second."""
    return int(raw["tx_time_seconds"].iloc[len(raw) // 2])


# --- labels of the delay and test windows never reach the train frame -------------------


@pytest.fixture(scope="module")
def windows() -> TrainingWindows:
    return TrainingWindows.handbook(TRAIN_START)


@pytest.fixture(scope="module")
def relabelled(raw: pd.DataFrame, windows: TrainingWindows) -> pd.DataFrame:
    """Every label of the delay and test windows flipped."""
    later = (day_of(raw) >= windows.delay.start).to_numpy()
    assert later.sum() > 1000
    fraud = raw["tx_fraud"].to_numpy().copy()
    fraud[later] = 1 - fraud[later]
    return raw.assign(tx_fraud=fraud.astype(raw["tx_fraud"].dtype))


def test_labels_after_the_train_window_change_nothing_in_the_train_frame(
    features: pd.DataFrame, relabelled: pd.DataFrame, windows: TrainingWindows
) -> None:
    version = feature_definition_version()
    original = build_training_set(features, windows, version)
    changed = build_training_set(compute_features(relabelled), windows, version)
    assert len(original.train) > 5_000 and original.train["tx_fraud"].sum() > 100
    pd.testing.assert_frame_equal(changed.train, original.train)
    assert changed.manifest["counts"]["train"] == original.manifest["counts"]["train"]
    # The flipped labels did reach the features of the test window, 7 days on: the check
    # above is not vacuous.
    test_before, test_after = by_id(original.test), by_id(changed.test)
    common = test_before.index.intersection(test_after.index)
    test_before, test_after = test_before.loc[common], test_after.loc[common]
    changed_features = [
        name for name in LABEL_FEATURES if differs(test_before[name], test_after[name], name).any()
    ]
    assert "terminal_id_risk_7day_window" in changed_features


# --- no feature for time t reads an event after t ----------------------------------------


@pytest.fixture(scope="module")
def future_changed(raw: pd.DataFrame, cut_seconds: int) -> pd.DataFrame:
    """Every event after T moved 3 hours later, its amount, terminal, label and scenario
    changed; plus new events after T on the cards and terminals of earlier events."""
    rng = np.random.default_rng(0)
    later = (raw["tx_time_seconds"] > cut_seconds).to_numpy()
    changed = raw.copy()
    shift = pd.Timedelta(hours=3)
    changed.loc[later, "tx_datetime"] = changed.loc[later, "tx_datetime"] + shift
    changed.loc[later, "tx_time_seconds"] += 3 * 3600
    changed.loc[later, "tx_amount"] = (changed.loc[later, "tx_amount"] * 3 + 1).round(2)
    changed.loc[later, "terminal_id"] = rng.permutation(changed.loc[later, "terminal_id"])
    changed.loc[later, "tx_fraud"] = 1 - changed.loc[later, "tx_fraud"]
    changed.loc[later, "tx_fraud_scenario"] = 4
    earlier = raw[~later].sample(500, random_state=0)
    appended = earlier.assign(
        transaction_id=raw["transaction_id"].max() + 1 + np.arange(len(earlier)),
        tx_time_seconds=cut_seconds + 1 + rng.integers(0, 10 * 86_400, len(earlier)),
        tx_amount=rng.uniform(0, 500, len(earlier)).round(2),
        tx_fraud=rng.integers(0, 2, len(earlier)),
    )
    appended["tx_datetime"] = pd.to_datetime(appended["tx_time_seconds"], unit="s").astype(
        raw["tx_datetime"].dtype
    )
    return pd.concat([changed, appended.astype(raw.dtypes.to_dict())], ignore_index=True)


@pytest.fixture(scope="module")
def future_comparison(
    features: pd.DataFrame, future_changed: pd.DataFrame, cut_seconds: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    before = by_id(features)
    after = by_id(compute_features(future_changed)).reindex(before.index)
    return before, after, before["tx_time_seconds"] <= cut_seconds


@pytest.mark.parametrize("name", NAMES)
def test_no_feature_reads_an_event_after_its_time(
    future_comparison: tuple[pd.DataFrame, pd.DataFrame, pd.Series], name: str
) -> None:
    before, after, past = future_comparison
    assert past.sum() > 10_000
    changed = differs(before.loc[past, name], after.loc[past, name], name)
    assert not changed.any(), (
        f"{name} changed on {int(changed.sum())} rows at or before the cut when only later "
        f"events changed, e.g. transaction ids {changed[changed].index[:5].tolist()}"
    )
    # Not vacuous: the same modification does change the feature on later rows.
    assert differs(before.loc[~past, name], after.loc[~past, name], name).any()


# --- labels inside the 7-day delay are never read ----------------------------------------


@pytest.fixture(scope="module")
def delay_comparison(
    raw: pd.DataFrame, features: pd.DataFrame, cut_seconds: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Labels of every event after T - 7 days flipped."""
    recent = (raw["tx_time_seconds"] > cut_seconds - DELAY_SECONDS).to_numpy()
    fraud = raw["tx_fraud"].to_numpy().copy()
    fraud[recent] = 1 - fraud[recent]
    before = by_id(features)
    changed = raw.assign(tx_fraud=fraud.astype(raw["tx_fraud"].dtype))
    after = by_id(compute_features(changed)).reindex(before.index)
    return before, after, before["tx_time_seconds"] <= cut_seconds


@pytest.mark.parametrize("name", NAMES)
def test_no_feature_reads_a_label_younger_than_the_delay(
    delay_comparison: tuple[pd.DataFrame, pd.DataFrame, pd.Series], name: str
) -> None:
    before, after, known = delay_comparison
    changed = differs(before.loc[known, name], after.loc[known, name], name)
    assert not changed.any(), (
        f"{name} read a label less than 7 days old on {int(changed.sum())} rows, "
        f"e.g. transaction ids {changed[changed].index[:5].tolist()}"
    )


@pytest.mark.parametrize("name", LABEL_FEATURES)
def test_label_features_do_read_labels_older_than_the_delay(
    delay_comparison: tuple[pd.DataFrame, pd.DataFrame, pd.Series], name: str
) -> None:
    """The delay test above is not vacuous: later rows see the flipped labels."""
    before, after, known = delay_comparison
    assert differs(before.loc[~known, name], after.loc[~known, name], name).any()


def test_the_fraud_scenario_changes_no_feature(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    scenario = rng.integers(0, 5, len(raw)).astype(raw["tx_fraud_scenario"].dtype)
    after = compute_features(raw.assign(tx_fraud_scenario=scenario))
    pd.testing.assert_frame_equal(by_id(after), by_id(features))
    assert "tx_fraud_scenario" not in after.columns
