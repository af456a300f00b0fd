"""The handbook's single split, through the project's code, reproduces its published counts.

Train 2018-07-25..07-31, 7 days of delay, test 2018-08-08..08-14 minus the cards known to be
compromised: 67,240 train transactions with 598 frauds, 58,264 test transactions with 385.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from fraud_orchestration.features import FEATURE_NAMES, feature_definition_version
from fraud_orchestration.partitions import LOOKBACK_DAYS
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.simulator.handbook import read_handbook_day
from fraud_orchestration.training.dataset import TrainingSet, build_training_set
from fraud_orchestration.training.windows import TrainingWindows
from tests.conftest import handbook_dir_or_skip

pytestmark = pytest.mark.handbook

TRAIN_START = date(2018, 7, 25)


@pytest.fixture(scope="module")
def single_split() -> TrainingSet:
    source = handbook_dir_or_skip()
    windows = TrainingWindows.handbook(TRAIN_START)
    look_back = [windows.train.start - timedelta(days=n) for n in range(LOOKBACK_DAYS, 0, -1)]
    raw = pd.concat(
        [read_handbook_day(source, day) for day in [*look_back, *windows.days_needed]],
        ignore_index=True,
    )
    seconds = (raw["tx_datetime"] - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    features = DuckDBFeatureEngine().compute(raw.assign(tx_time_seconds=seconds))
    return build_training_set(features, windows, feature_definition_version())


def test_the_windows_are_the_handbooks(single_split: TrainingSet) -> None:
    windows = single_split.windows
    assert (windows.train.start, windows.train.end) == (date(2018, 7, 25), date(2018, 8, 1))
    assert (windows.delay.start, windows.delay.end) == (date(2018, 8, 1), date(2018, 8, 8))
    assert (windows.test.start, windows.test.end) == (date(2018, 8, 8), date(2018, 8, 15))
    assert (windows.validation.start, windows.validation.end) == (
        date(2018, 7, 30),
        date(2018, 8, 1),
    )


def test_train_counts_match_the_handbook(single_split: TrainingSet) -> None:
    assert len(single_split.train) == 67_240
    assert int(single_split.train["tx_fraud"].sum()) == 598
    assert single_split.manifest["counts"]["train"]["rows"] == 67_240
    assert single_split.manifest["counts"]["train"]["frauds"] == 598


def test_test_counts_match_the_handbook(single_split: TrainingSet) -> None:
    assert len(single_split.test) == 58_264
    assert int(single_split.test["tx_fraud"].sum()) == 385
    assert single_split.manifest["counts"]["test"]["rows"] == 58_264
    assert single_split.manifest["counts"]["test"]["frauds"] == 385


def test_every_feature_is_present_and_complete(single_split: TrainingSet) -> None:
    for frame in (single_split.train, single_split.test):
        assert not frame[FEATURE_NAMES].isna().any().any()
