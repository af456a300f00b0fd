from __future__ import annotations

import json
from dataclasses import replace
from importlib.metadata import version

import numpy as np
import pyarrow as pa
import pytest

from fraud_orchestration.modeling.trainer import (
    TrainedModel,
    TrainingParams,
    f1_threshold,
    read_model_card,
    train_model,
    tune,
)

from .conftest import FEATURES

FAST = TrainingParams(n_estimators=60, early_stopping_rounds=10)


@pytest.fixture(scope="module")
def model(splits) -> TrainedModel:
    train, valid, _ = splits
    return train_model(train, valid, FEATURES, FAST)


def test_same_data_and_seed_give_identical_models(splits, model) -> None:
    train, valid, test = splits
    again = train_model(train, valid, FEATURES, FAST)
    assert again.best_iteration == model.best_iteration
    assert np.array_equal(again.predict(test), model.predict(test))
    assert again.booster.save_raw("json") == model.booster.save_raw("json")


def test_another_seed_gives_another_model(splits, model) -> None:
    train, valid, test = splits
    other = train_model(train, valid, FEATURES, replace(FAST, seed=1))
    assert not np.array_equal(other.predict(test), model.predict(test))


def test_early_stopping_cuts_the_booster_at_the_best_round(splits) -> None:
    train, valid, test = splits
    stopped = train_model(train, valid, FEATURES, TrainingParams(learning_rate=0.5))
    assert stopped.best_iteration < 400 - 20
    assert stopped.booster.num_boosted_rounds() == stopped.best_iteration + 1


def test_without_early_stopping_every_round_is_kept(splits) -> None:
    train, valid, _ = splits
    full = train_model(
        train, valid, FEATURES, TrainingParams(n_estimators=15, early_stopping_rounds=None)
    )
    assert full.best_iteration == 14
    assert full.booster.num_boosted_rounds() == 15


def test_json_round_trip_predicts_identically_and_writes_no_pickle(splits, model, tmp_path) -> None:
    _, _, test = splits
    model.save(
        tmp_path,
        metrics={"test": {"avg_precision": 0.5}},
        data_windows={"train": ["2018-07-01", "2018-07-07"]},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model_card.json"]
    json.loads((tmp_path / "model.json").read_text())  # XGBoost JSON, not a binary format
    loaded = TrainedModel.load(tmp_path)
    assert np.array_equal(loaded.predict(test), model.predict(test))
    assert loaded.params == model.params
    assert loaded.decision_threshold == model.decision_threshold
    assert loaded.feature_importance == model.feature_importance


def test_model_card_records_what_a_reviewer_needs(model, tmp_path) -> None:
    model.save(tmp_path, metrics={"test": {"auc_roc": 0.9}}, data_windows={"train": "w"})
    card = read_model_card(tmp_path)
    assert card["features"] == FEATURES
    assert card["tree_method"] == "hist" == card["params"]["tree_method"]
    assert card["best_iteration"] == model.best_iteration
    assert card["metrics"] == {"test": {"auc_roc": 0.9}}
    assert card["data_windows"] == {"train": "w"}
    assert card["code_version"]["package"] == version("fraud-orchestration")
    assert "git_commit" in card["code_version"]
    assert 0.0 < card["decision_threshold"] < 1.0
    assert card["training_seconds"] >= 0
    assert set(card["feature_importance_gain"]) == set(FEATURES)


def test_scale_pos_weight_none_means_negatives_over_positives(splits) -> None:
    train, valid, _ = splits
    weighted = train_model(train, valid, FEATURES, replace(FAST, scale_pos_weight=None))
    positives = int(train["tx_fraud"].sum())
    assert weighted.params.scale_pos_weight == (len(train) - positives) / positives
    assert TrainingParams().scale_pos_weight == 1.0  # the measured default: no re-weighting


def test_exact_tree_method_is_accepted(splits) -> None:
    train, valid, _ = splits
    exact = train_model(train, valid, FEATURES, replace(FAST, tree_method="exact"))
    assert exact.params.tree_method == "exact"


def test_predict_ignores_extra_columns_and_needs_every_feature(splits, model) -> None:
    _, _, test = splits
    assert np.array_equal(model.predict(test.assign(extra=1.0)), model.predict(test))
    with pytest.raises(KeyError):
        model.predict(test.drop(columns="f3"))


def test_an_arrow_table_scores_like_its_dataframe(splits, model) -> None:
    """The batch scoring path hands the partition over as Arrow, with int and float columns
    (the matrix is built column by column, no DataFrame in between)."""
    test = splits[2]
    table = pa.Table.from_pandas(test, preserve_index=False)
    assert np.array_equal(model.predict(table), model.predict(test))
    matrix = model.feature_matrix(table)
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous


def test_refuses_label_derived_features_and_one_class_frames(splits) -> None:
    train, valid, _ = splits
    with pytest.raises(ValueError, match="never be model features"):
        train_model(train.assign(tx_fraud_scenario=0), valid, [*FEATURES, "tx_fraud_scenario"])
    with pytest.raises(ValueError, match="both frauds and genuine"):
        train_model(train, valid[valid["tx_fraud"] == 0], FEATURES)
    with pytest.raises(ValueError, match="lacks columns"):
        train_model(train, valid.drop(columns="f0"), FEATURES)


def test_f1_threshold_picks_the_best_cut() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1])
    score = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.75, 0.9])
    # Flagging score >= 0.6 catches all three frauds with one false alarm: F1 = 6/7.
    assert f1_threshold(y, score) == 0.6


def test_tune_starts_from_the_base_and_keeps_the_best(splits) -> None:
    train, valid, _ = splits
    best, trials = tune(train, valid, FEATURES, budget_seconds=600, base_params=FAST, max_trials=3)
    assert len(trials) == 3
    assert trials.loc[0, ["max_depth", "learning_rate"]].tolist() == [6, 0.1]
    winner = trials.loc[trials["valid_ap"].idxmax()]
    assert (best.max_depth, best.learning_rate) == (winner["max_depth"], winner["learning_rate"])
    assert best.n_estimators == FAST.n_estimators  # only the searched knobs change
    again, _ = tune(train, valid, FEATURES, budget_seconds=600, base_params=FAST, max_trials=3)
    assert again == best


def test_tune_runs_the_base_trial_even_without_budget(splits) -> None:
    train, valid, _ = splits
    best, trials = tune(train, valid, FEATURES, budget_seconds=0, base_params=FAST)
    assert len(trials) == 1 and best == FAST
