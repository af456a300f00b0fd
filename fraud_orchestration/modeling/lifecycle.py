"""Train a challenger on a training set, score it and its champion on the same test window,
and decide whether it may replace the champion (the gate)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, replace

import pandas as pd

from fraud_orchestration.modeling.metrics import evaluate, precision_recall_points
from fraud_orchestration.modeling.trainer import TrainedModel, TrainingParams, train_model
from fraud_orchestration.training.dataset import TrainingSet


def fit(training_set: TrainingSet, features: list[str], params: TrainingParams) -> TrainedModel:
    """Early-stop on the validation days, then refit on the whole train window.

    The refit uses the number of rounds early stopping chose and keeps the decision
    threshold picked on the held-out validation days (a threshold picked on data the model
    was fitted on would be optimistic).
    """
    held_out = training_set.validation_mask
    fit_rows, valid_rows = training_set.train[~held_out], training_set.train[held_out]
    first = train_model(fit_rows, valid_rows, features, params)
    refit_params = replace(
        params, n_estimators=first.best_iteration + 1, early_stopping_rounds=None
    )
    refit = train_model(training_set.train, valid_rows, features, refit_params)
    return replace(
        refit,
        decision_threshold=first.decision_threshold,
        training_seconds=round(first.training_seconds + refit.training_seconds, 3),
    )


def test_metrics(model: TrainedModel, test: pd.DataFrame) -> dict[str, float]:
    scored = test.assign(score=model.predict(test))
    return {name: round(value, 6) for name, value in evaluate(scored).items()}


@dataclass(frozen=True)
class GateRules:
    """A challenger must not be worse than the champion beyond a tolerance on average
    precision and Card Precision@100, and must meet the absolute floors."""

    ap_tolerance: float = 0.01
    cp100_tolerance: float = 0.01
    min_auc_roc: float = 0.75
    min_avg_precision: float = 0.30
    min_card_precision_at_100: float = 0.05


@dataclass(frozen=True)
class GateVerdict:
    approved: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: int | None


def judge(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: int | None,
    rules: GateRules,
) -> GateVerdict:
    failures = [
        f"{name} {challenger[name]:.4f} below the floor {floor:.4f}"
        for name, floor in (
            ("auc_roc", rules.min_auc_roc),
            ("avg_precision", rules.min_avg_precision),
            ("card_precision_at_100", rules.min_card_precision_at_100),
        )
        if challenger[name] < floor
    ]
    if champion is not None:
        failures += [
            f"{name} {challenger[name]:.4f} worse than champion v{champion_version}'s "
            f"{champion[name]:.4f} by more than {tolerance}"
            for name, tolerance in (
                ("avg_precision", rules.ap_tolerance),
                ("card_precision_at_100", rules.cp100_tolerance),
            )
            if challenger[name] < champion[name] - tolerance
        ]
    if failures:
        reason = "Rejected: " + "; ".join(failures)
    elif champion is None:
        reason = "Approved: first model, meets every floor"
    else:
        reason = f"Approved: not worse than champion v{champion_version} on the same test window"
    return GateVerdict(not failures, reason, challenger, champion, champion_version)


def precision_recall_png(model: TrainedModel, test: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = precision_recall_points(test["tx_fraud"].to_numpy(), model.predict(test))
    figure, axis = plt.subplots(figsize=(5, 4), dpi=80)
    axis.plot(points["recall"], points["precision"], color="#4f46e5")
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall (test window)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def inline_image(png: bytes, alt: str) -> str:
    """Markdown that the Dagster UI renders as the image itself."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
