"""The champion/challenger gate on a small simulated lake: a challenger trained on shuffled
labels is rejected and the champion stays; a better challenger is approved and takes over.

Models are trained with ``fit`` (early stopping on the validation days, then a refit on the
whole train window) and scored with ``test_metrics`` on the same test window, as the
``fraud_model`` asset does; ``judge`` applies the default ``GateRules``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_orchestration.features import FEATURE_NAMES, feature_definition_version
from fraud_orchestration.modeling.lifecycle import GateRules, fit, judge
from fraud_orchestration.modeling.lifecycle import test_metrics as score_test_window
from fraud_orchestration.modeling.trainer import TrainedModel, TrainingParams
from fraud_orchestration.resources.model_registry import ApprovalStatus, LocalModelRegistry
from fraud_orchestration.training.dataset import TrainingSet, build_training_set
from fraud_orchestration.training.windows import TrainingWindows

from .conftest import TRAIN_START

FAST = TrainingParams(n_estimators=150, early_stopping_rounds=15)
RULES = GateRules()
WEAK_FEATURES = ["tx_during_weekend", "tx_during_night", "customer_id_nb_tx_1day_window"]
"""Features that say next to nothing about fraud: the model of a weak champion."""


@pytest.fixture(scope="module")
def training_set(features: pd.DataFrame) -> TrainingSet:
    return build_training_set(
        features, TrainingWindows.handbook(TRAIN_START), feature_definition_version()
    )


@pytest.fixture(scope="module")
def good(training_set: TrainingSet) -> tuple[TrainedModel, dict[str, float]]:
    model = fit(training_set, FEATURE_NAMES, FAST)
    return model, score_test_window(model, training_set.test)


def register(
    registry: LocalModelRegistry, folder: Path, model: TrainedModel, metrics: dict[str, float]
) -> int:
    model.save(folder, metrics=metrics)
    return registry.register(folder, metrics).version


def test_a_challenger_on_shuffled_labels_is_rejected_and_the_champion_stays(
    training_set: TrainingSet, good: tuple[TrainedModel, dict[str, float]], tmp_path: Path
) -> None:
    registry = LocalModelRegistry(root=str(tmp_path / "registry"))
    champion_model, champion_metrics = good
    first = judge(champion_metrics, None, None, RULES)
    assert first.approved, first.reason
    champion = register(registry, tmp_path / "v1", champion_model, champion_metrics)
    registry.approve(champion, first.reason)

    labels = training_set.train["tx_fraud"].to_numpy()
    shuffled = replace(
        training_set,
        train=training_set.train.assign(tx_fraud=np.random.default_rng(0).permutation(labels)),
    )
    model = fit(shuffled, FEATURE_NAMES, FAST)
    metrics = score_test_window(model, training_set.test)
    verdict = judge(metrics, champion_metrics, champion, RULES)
    challenger = register(registry, tmp_path / "v2", model, metrics)
    registry.reject(challenger, verdict.reason)

    assert not verdict.approved
    assert verdict.reason.startswith("Rejected")
    assert "worse than champion v1" in verdict.reason
    assert metrics["avg_precision"] < champion_metrics["avg_precision"] - RULES.ap_tolerance
    assert registry.champion().version == champion
    assert registry.get(challenger).status is ApprovalStatus.REJECTED


def test_a_better_challenger_is_approved_and_becomes_the_champion(
    training_set: TrainingSet, good: tuple[TrainedModel, dict[str, float]], tmp_path: Path
) -> None:
    registry = LocalModelRegistry(root=str(tmp_path / "registry"))
    weak_model = fit(training_set, WEAK_FEATURES, FAST)
    weak_metrics = score_test_window(weak_model, training_set.test)
    champion = register(registry, tmp_path / "v1", weak_model, weak_metrics)
    registry.approve(champion, "the champion in place before this test")

    model, metrics = good
    verdict = judge(metrics, weak_metrics, champion, RULES)
    challenger = register(registry, tmp_path / "v2", model, metrics)
    registry.approve(challenger, verdict.reason)

    assert verdict.approved, verdict.reason
    assert verdict.reason.startswith("Approved")
    for name in ("avg_precision", "card_precision_at_100"):
        assert metrics[name] > weak_metrics[name]
    assert registry.champion().version == challenger
    assert registry.previous_champion().version == champion
