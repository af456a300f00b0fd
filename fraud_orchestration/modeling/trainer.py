"""Train, save and load the XGBoost fraud model, and tune it within a time budget.

A saved model is a folder with two files and never a pickle: ``model.json`` (XGBoost's own
JSON format, readable by any XGBoost runtime, SageMaker's included) and ``model_card.json``
(what a reviewer needs to approve it: features, parameters, data windows, metrics, code
version, decision threshold).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import xgboost as xgb
from sklearn.metrics import precision_recall_curve

from fraud_orchestration.atomic import atomic_write_bytes
from fraud_orchestration.modeling.metrics import average_precision
from fraud_orchestration.progress import PercentLog
from fraud_orchestration.schema import LABEL, NEVER_A_FEATURE

MODEL_FILE = "model.json"
CARD_FILE = "model_card.json"
CARD_FORMAT = "fraud-model-card/1"
THRESHOLD_RULE = "maximise F1 on the validation set"


@dataclass(frozen=True)
class TrainingParams:
    """XGBoost settings; the defaults are the project's baseline.

    ``n_estimators`` is only an upper bound: training stops once validation AUC-PR has not
    improved for ``early_stopping_rounds`` rounds (``None`` turns early stopping off).

    ``tree_method`` is ``"hist"`` (splits between ``max_bin`` quantile bins, fast) or
    ``"exact"`` (every split point, several times slower). ``max_bin`` is 1024, not
    XGBoost's 256, because on the handbook data (four weekly folds, 15 baseline features)
    the coarser bins cost about 0.02 average precision in every fold (0.657 -> 0.677);
    ``exact`` gains about 0.014 more (0.691) at two to three times the training time.

    ``scale_pos_weight`` is 1.0 (no re-weighting) because re-weighting by negatives /
    positives (``None`` computes that from the training set, about 110 here) lowered
    average precision in all four folds (0.677 -> 0.641) and Card Precision@100 too:
    it distorts the probabilities without ranking frauds any better.
    """

    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.1
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    tree_method: Literal["hist", "exact"] = "hist"
    max_bin: int = 1024
    scale_pos_weight: float | None = 1.0
    early_stopping_rounds: int | None = 20
    seed: int = 0
    n_jobs: int = 2

    def booster_params(self, scale_pos_weight: float) -> dict[str, Any]:
        return {
            "objective": "binary:logistic",
            "eval_metric": "aucpr",
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "tree_method": self.tree_method,
            "max_bin": self.max_bin,
            "scale_pos_weight": scale_pos_weight,
            "seed": self.seed,
            "nthread": self.n_jobs,
        }


@dataclass(frozen=True)
class TrainedModel:
    """A booster cut to its best round, with everything its model card records.

    ``params.scale_pos_weight`` is the value actually used (never ``None``).
    """

    booster: xgb.Booster
    features: list[str]
    params: TrainingParams
    best_iteration: int
    training_seconds: float
    feature_importance: dict[str, float]
    decision_threshold: float
    trained_at: str

    def predict(self, data: pd.DataFrame | pa.Table) -> np.ndarray:
        """Fraud probabilities for the rows of ``data`` (extra columns are ignored).

        The features go in as one float32 matrix: XGBoost compares split values in float32
        anyway, so the scores are the same as from the DataFrame, and it skips converting
        column by column. An Arrow table is copied column by column straight into that matrix,
        with no DataFrame in between (``python -m benchmarks.serving --batch-scoring-only``).
        """
        return self.booster.inplace_predict(
            self.feature_matrix(data), iteration_range=(0, self.best_iteration + 1)
        )

    def feature_matrix(self, data: pd.DataFrame | pa.Table) -> np.ndarray:
        """The model's feature columns of ``data`` as one C-ordered float32 matrix."""
        if isinstance(data, pd.DataFrame):
            return data[self.features].to_numpy(np.float32)
        matrix = np.empty((data.num_rows, len(self.features)), dtype=np.float32)
        for j, name in enumerate(self.features):
            matrix[:, j] = data.column(name).to_numpy()
        return matrix

    def card(
        self,
        metrics: dict[str, Any] | None = None,
        data_windows: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The model card: ``metrics`` and ``data_windows`` are the caller's to supply."""
        return {
            "format": CARD_FORMAT,
            "model_file": MODEL_FILE,
            "label": LABEL,
            "features": self.features,
            "params": asdict(self.params),
            "tree_method": self.params.tree_method,
            "best_iteration": self.best_iteration,
            "decision_threshold": self.decision_threshold,
            "threshold_rule": THRESHOLD_RULE,
            "training_seconds": self.training_seconds,
            "trained_at": self.trained_at,
            "feature_importance_gain": self.feature_importance,
            "metrics": metrics or {},
            "data_windows": data_windows or {},
            "code_version": code_version(),
        }

    def save(
        self,
        directory: str | Path,
        metrics: dict[str, Any] | None = None,
        data_windows: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``model.json`` and ``model_card.json`` into ``directory``; return it."""
        directory = Path(directory)
        atomic_write_bytes(directory / MODEL_FILE, bytes(self.booster.save_raw(raw_format="json")))
        card = self.card(metrics, data_windows)
        atomic_write_bytes(directory / CARD_FILE, json.dumps(card, indent=2).encode())
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TrainedModel:
        """Load a folder written by :meth:`save`."""
        directory = Path(directory)
        card = read_model_card(directory)
        booster = xgb.Booster()
        booster.load_model(str(directory / card["model_file"]))
        if booster.feature_names != card["features"]:
            raise ValueError(
                f"{directory}: model features {booster.feature_names} "
                f"differ from the card's {card['features']}"
            )
        return cls(
            booster=booster,
            features=card["features"],
            params=TrainingParams(**card["params"]),
            best_iteration=card["best_iteration"],
            training_seconds=card["training_seconds"],
            feature_importance=card["feature_importance_gain"],
            decision_threshold=card["decision_threshold"],
            trained_at=card["trained_at"],
        )


def read_model_card(directory: str | Path) -> dict[str, Any]:
    card = json.loads((Path(directory) / CARD_FILE).read_text())
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{directory}: not a {CARD_FORMAT} model card")
    return card


def code_version() -> dict[str, str | None]:
    """The package version, and the git commit of the source tree when there is one."""
    try:
        package = version("fraud-orchestration")
    except PackageNotFoundError:
        package = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package": package, "git_commit": commit, "xgboost": xgb.__version__}


def gain_importance(booster: xgb.Booster, features: list[str]) -> dict[str, float]:
    """Total gain per feature, 0.0 for features no split uses."""
    # "gain" gives one float per feature (lists are only for vector leaves)
    gain = cast(dict[str, float], booster.get_score(importance_type="gain"))
    return {name: float(gain.get(name, 0.0)) for name in features}


class RoundProgress(xgb.callback.TrainingCallback):
    """Logs the share of boosting rounds done and the validation metric, every 10 %.

    Early stopping usually ends training before 100 %: the last line says where.
    """

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.percent_log = PercentLog("training rounds")

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        latest = {
            f"{data}-{metric}": values[-1]
            for data, metrics in evals_log.items()
            for metric, values in metrics.items()
        }
        detail = f"(round {epoch + 1}/{self.rounds}" + "".join(
            f", {name} {float(value):.4f}" for name, value in latest.items()
        )
        self.percent_log.update(100.0 * (epoch + 1) / self.rounds, detail + ")")
        return False

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        self.percent_log.log.info(
            f"training rounds: stopped after {model.num_boosted_rounds()} of {self.rounds}"
        )
        return model


def train_model(
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    features: list[str],
    params: TrainingParams | None = None,
) -> TrainedModel:
    """Fit on ``train_df``, early-stop and pick the decision threshold on ``valid_df``.

    Deterministic: the same frames, features and params give the same trees (fixed seed,
    fixed thread count). The booster is cut to its best round so that any runtime that
    ignores ``iteration_range`` still scores with the right trees.
    """
    params = params or TrainingParams()
    _check_frames(train_df, valid_df, features)
    y_train = train_df[LABEL].to_numpy()
    weight = _scale_pos_weight(params, y_train)
    used = replace(params, scale_pos_weight=weight)
    dtrain = xgb.DMatrix(train_df[features], label=y_train, feature_names=features)
    dvalid = xgb.DMatrix(valid_df[features], label=valid_df[LABEL], feature_names=features)
    started = time.perf_counter()
    booster = xgb.train(
        used.booster_params(weight),
        dtrain,
        num_boost_round=used.n_estimators,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=used.early_stopping_rounds,
        verbose_eval=False,
        callbacks=[RoundProgress(used.n_estimators)],
    )
    seconds = time.perf_counter() - started
    best = booster.best_iteration if used.early_stopping_rounds else used.n_estimators - 1
    booster = booster[: best + 1]
    valid_scores = booster.inplace_predict(valid_df[features])
    return TrainedModel(
        booster=booster,
        features=list(features),
        params=used,
        best_iteration=best,
        training_seconds=round(seconds, 3),
        feature_importance=gain_importance(booster, features),
        decision_threshold=f1_threshold(valid_df[LABEL].to_numpy(), valid_scores),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (flag when ``score >= threshold``) with the highest F1.

    F1 weighs missed frauds and false alarms alike, a neutral default until the business
    prices them; among equal F1 the lowest threshold wins (more frauds caught).
    """
    precision, recall, thresholds = precision_recall_curve(y, score)
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def tune(
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    features: list[str],
    budget_seconds: float,
    base_params: TrainingParams | None = None,
    *,
    max_trials: int | None = None,
    seed: int = 0,
) -> tuple[TrainingParams, pd.DataFrame]:
    """Random search over max_depth, learning_rate and min_child_weight, by validation AP.

    The first trial is ``base_params`` itself, so the result is never worse than the
    baseline on validation. A new trial starts only while the budget lasts, so the wall
    time is at most the budget plus one trial; ``max_trials`` caps the count, which makes
    the search reproducible across machines of different speed. The validation set also
    early-stops each trial, so its AP is optimistic: judge the winner on a later test set.
    Returns the best params and one row per trial.
    """
    base_params = base_params or TrainingParams()
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + budget_seconds
    rows: list[dict[str, Any]] = []
    candidate = base_params
    while not rows or (
        time.monotonic() < deadline and (max_trials is None or len(rows) < max_trials)
    ):
        model = train_model(train_df, valid_df, features, candidate)
        rows.append(
            {
                "trial": len(rows),
                "max_depth": candidate.max_depth,
                "learning_rate": candidate.learning_rate,
                "min_child_weight": candidate.min_child_weight,
                "valid_ap": average_precision(valid_df[LABEL], model.predict(valid_df)),
                "best_iteration": model.best_iteration,
                "seconds": model.training_seconds,
                "params": candidate,
            }
        )
        candidate = replace(
            base_params,
            max_depth=int(rng.integers(2, 11)),
            learning_rate=float(10 ** rng.uniform(-2, np.log10(0.3))),
            min_child_weight=float(rng.choice([1.0, 2.0, 5.0, 10.0, 20.0])),
        )
    trials = pd.DataFrame(rows)
    best = trials.loc[trials["valid_ap"].idxmax(), "params"]
    return best, trials.drop(columns="params")


def _scale_pos_weight(params: TrainingParams, y_train: np.ndarray) -> float:
    if params.scale_pos_weight is not None:
        return float(params.scale_pos_weight)
    positives = int(y_train.sum())
    return float((len(y_train) - positives) / positives)


def _check_frames(train_df: pd.DataFrame, valid_df: pd.DataFrame, features: list[str]) -> None:
    leaked = sorted(set(features) & set(NEVER_A_FEATURE))
    if leaked:
        raise ValueError(f"{leaked} must never be model features")
    for name, frame in (("train", train_df), ("valid", valid_df)):
        missing = [column for column in [*features, LABEL] if column not in frame.columns]
        if missing:
            raise ValueError(f"{name} frame lacks columns {missing}")
        if frame[LABEL].nunique() != 2:
            raise ValueError(f"{name} frame needs both frauds and genuine transactions")
