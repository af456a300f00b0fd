"""The C-API calls give exactly what XGBoost's Python wrapper gives, and fail as loudly."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import xgboost as xgb

from fraud_orchestration.serving.xgboost_c_api import DensePredictor

FEATURES = 6


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 4, "tree_method": "hist", "nthread": 1}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=40)


def rows(count: int) -> np.ndarray:
    x = np.random.default_rng(count).normal(size=(count, FEATURES)).astype(np.float32)
    x[::3, 1] = np.nan  # missing values take the trees' default branches
    return x


@pytest.mark.parametrize("count", [1, 7, 300])
@pytest.mark.parametrize("iteration_range", [(0, 40), (0, 25)])
def test_scores_and_contributions_equal_the_wrapper(booster, count, iteration_range) -> None:
    predictor = DensePredictor(booster, iteration_range)
    x = rows(count)
    expected = booster.inplace_predict(x, iteration_range=iteration_range)
    np.testing.assert_array_equal(predictor.scores(x), expected)
    for approximate in (True, False):
        expected = booster.predict(
            xgb.DMatrix(x, nthread=1),
            pred_contribs=True,
            approx_contribs=approximate,
            iteration_range=iteration_range,
        )
        np.testing.assert_array_equal(predictor.contributions(x, approximate), expected)


def test_the_iteration_range_is_used(booster) -> None:
    x = rows(50)
    assert not np.array_equal(
        DensePredictor(booster, (0, 40)).scores(x), DensePredictor(booster, (0, 5)).scores(x)
    )


@pytest.mark.parametrize("columns", [FEATURES - 1, FEATURES + 1])
def test_a_wrong_column_count_is_refused_before_xgboost_sees_it(booster, columns) -> None:
    """Too many columns would corrupt the heap in XGBoost's contributions (3.2)."""
    predictor = DensePredictor(booster, (0, 40))
    wrong = np.zeros((2, columns), dtype=np.float32)
    with pytest.raises(ValueError, match=f"{columns} columns; the model has {FEATURES}"):
        predictor.scores(wrong)
    with pytest.raises(ValueError, match=f"{columns} columns"):
        predictor.contributions(wrong, approximate=True)


def test_xgboosts_own_errors_are_raised(booster) -> None:
    predictor = DensePredictor(booster, (0, 41))  # beyond the booster's 40 rounds
    with pytest.raises(xgb.core.XGBoostError):
        predictor.scores(rows(2))


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((2, FEATURES), dtype=np.float64),
        np.zeros(FEATURES, dtype=np.float32),
        np.zeros((FEATURES, 2), dtype=np.float32).T,
    ],
    ids=["float64", "one-dimensional", "not-contiguous"],
)
def test_only_contiguous_float32_matrices_are_passed(booster, x) -> None:
    with pytest.raises(ValueError, match="C-contiguous float32 matrix"):
        DensePredictor(booster, (0, 40)).scores(x)


def test_the_threads_proxy_matrix_serves_any_row_count_in_any_order(booster) -> None:
    """One proxy per thread, pointed at each call's matrix: nothing of a previous call
    (its row count, its values) leaks into the next."""
    predictor = DensePredictor(booster, (0, 40))
    for count in (1, 300, 7, 1, 50):
        x = rows(count)
        np.testing.assert_array_equal(predictor.scores(x), booster.inplace_predict(x))


def test_threads_score_at_once_each_with_its_own_proxy(booster) -> None:
    predictor = DensePredictor(booster, (0, 40))
    matrices = [rows(count) for count in (3, 40, 1, 200)]
    expected = [booster.inplace_predict(x) for x in matrices]
    failures: list[int] = []

    def score(k: int) -> None:
        for _ in range(200):
            if not np.array_equal(predictor.scores(matrices[k]), expected[k]):
                failures.append(k)

    threads = [threading.Thread(target=score, args=(k,)) for k in range(len(matrices))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_sliced_booster_scores_as_the_whole_one_over_the_same_rounds(booster) -> None:
    """A slot drops the rounds after the best one; the whole model is then XGBoost's
    "every tree" call (iteration_end 0), a faster path with the same answers."""
    x = rows(300)
    sliced = booster[:25]
    sliced.set_param({"nthread": 1})
    whole = DensePredictor(booster, (0, 25))
    np.testing.assert_array_equal(DensePredictor(sliced, (0, 25)).scores(x), whole.scores(x))
    np.testing.assert_array_equal(
        DensePredictor(sliced, (0, 25)).contributions(x, True), whole.contributions(x, True)
    )
