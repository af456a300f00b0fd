"""The compiled approximate contributions are XGBoost's bit for bit, and a slot falls back to
XGBoost's own whenever they are not (or the model is one they do not handle)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.serving.model import load_slot
from fraud_orchestration.serving.tree_contributions import ApproxContributions
from fraud_orchestration.serving.xgboost_c_api import DensePredictor

FEATURES = 6
PARAMS = {"objective": "binary:logistic", "max_depth": 5, "tree_method": "hist", "nthread": 1}


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, FEATURES)).astype(np.float32)
    x[::7, 2] = np.nan  # the trees learn default directions
    y = x[:, 0] + x[:, 1] * np.nan_to_num(x[:, 2]) + rng.normal(scale=0.5, size=len(x)) > 0
    return x, y.astype(int)


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    x, y = training_data()
    return xgb.train(PARAMS, xgb.DMatrix(x, label=y), num_boost_round=60)


def rows(count: int) -> np.ndarray:
    x = np.random.default_rng(count).normal(size=(count, FEATURES)).astype(np.float32)
    x[::3, 2] = np.nan
    x[::5, 0] = np.nan
    return x


@pytest.mark.parametrize("iteration_range", [(0, 60), (0, 21)])
@pytest.mark.parametrize("count", [1, 9, 2000])
def test_they_equal_xgboosts_approx_contribs_bit_for_bit(booster, iteration_range, count) -> None:
    explainer, why = ApproxContributions.from_booster(booster, iteration_range)
    assert explainer is not None, why
    x = rows(count)
    expected = booster.predict(
        xgb.DMatrix(x, nthread=1),
        pred_contribs=True,
        approx_contribs=True,
        iteration_range=iteration_range,
    )[:, :FEATURES]
    np.testing.assert_array_equal(explainer.contributions(x), expected)
    assert explainer.verify(DensePredictor(booster, iteration_range)) is None


def test_the_probe_takes_every_split_both_ways_and_every_default(booster) -> None:
    explainer, _ = ApproxContributions.from_booster(booster, (0, 60))
    probe = explainer.probe()
    assert np.isnan(probe).any(axis=0).all()
    for node in np.flatnonzero(explainer.left != -1):
        column, condition = probe[:, explainer.feature[node]], explainer.condition[node]
        assert (column == condition).any()
        assert (column == np.nextafter(condition, np.float32(-np.inf))).any()


def test_verify_catches_a_split_one_float_step_off(booster) -> None:
    """The probe holds the split conditions themselves: a condition moved by the smallest
    float32 step sends those rows the other way, and verify says so."""
    explainer, _ = ApproxContributions.from_booster(booster, (0, 60))
    node = int(np.flatnonzero(explainer.left != -1)[0])
    explainer.condition[node] = np.nextafter(explainer.condition[node], np.float32(np.inf))
    problem = explainer.verify(DensePredictor(booster, (0, 60)))
    assert problem is not None and "differ from XGBoost's" in problem


def test_verify_catches_a_wrong_node_mean(booster) -> None:
    """A node whose feature differs from its parent's: a wrong mean moves credit between
    the two features (along one feature the credits telescope, and it would cancel)."""
    explainer, _ = ApproxContributions.from_booster(booster, (0, 60))
    parents = {
        int(child): int(node)
        for node in range(len(explainer.left))
        for child in (explainer.left[node], explainer.right[node])
        if child != -1
    }
    node = next(
        child
        for child, parent in parents.items()
        if explainer.left[child] != -1 and explainer.feature[child] != explainer.feature[parent]
    )
    explainer.mean[node] += np.float32(1e-3)
    assert explainer.verify(DensePredictor(booster, (0, 60))) is not None


def test_several_trees_per_round_are_left_to_xgboost() -> None:
    x, y = training_data()
    forest = xgb.train({**PARAMS, "num_parallel_tree": 3}, xgb.DMatrix(x, label=y), 5)
    explainer, why = ApproxContributions.from_booster(forest, (0, 5))
    assert explainer is None and why == "several trees per round"


def test_categorical_splits_are_left_to_xgboost() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"kind": pd.Categorical(rng.integers(0, 5, 500)), "x": rng.random(500)})
    y = (frame["kind"].cat.codes % 2 == 0).astype(int)
    matrix = xgb.DMatrix(frame, label=y, enable_categorical=True)
    model = xgb.train({**PARAMS, "max_cat_to_onehot": 1}, matrix, 5)
    explainer, why = ApproxContributions.from_booster(model, (0, 5))
    assert explainer is None and why == "categorical splits"


def test_a_slot_whose_contributions_differ_takes_xgboosts(lake, monkeypatch) -> None:
    served = load_slot(lake.model_dir, "1", FEATURE_NAMES)
    assert served.explainer is not None and served.status()["reasons_by"] == "numba"

    monkeypatch.setattr(ApproxContributions, "verify", lambda self, reference: "they differ")
    slot = load_slot(lake.model_dir, "1", FEATURE_NAMES)
    assert slot.explainer is None
    assert slot.status()["reasons_by"] == "xgboost"
    assert slot.status()["reasons_note"] == "they differ"
    values = np.random.default_rng(0).random((4, len(FEATURE_NAMES)))
    assert slot.reasons(values) == served.reasons(values)
