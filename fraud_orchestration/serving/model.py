"""A model slot: a loaded, checked XGBoost model ready to score on one thread.

Loading refuses, without touching the model that is serving:

* anything but XGBoost's own JSON/UBJ model files (a card naming a pickle is refused; nothing
  is ever unpickled -- ``Booster.load_model`` parses XGBoost's formats only);
* a corrupt model or card (``TrainedModel.load`` fails, or its booster's features differ from
  the card's);
* a model whose features the service does not compute, or whose booster's feature count
  differs from the card's feature list; with ``feature_policy="exact"`` also a model whose
  card does not list exactly the service's features (the default, ``"subset"``,
  serves a model trained before features were added: it is scored on its own features, by
  name);
* a decision threshold outside [0, 1] or a best iteration beyond the booster's rounds.

Scores come from ``inplace_predict`` (``nthread=1``) over the card's features in the card's
order, called through XGBoost's C API (:mod:`serving.xgboost_c_api`: the same call without the
Python wrapper's per-call cost), on the booster cut after its best round. Reasons are each
transaction's top features by contribution to the log-odds: ``approx`` (the default) is
XGBoost's ``approx_contribs`` -- Saabas' path attribution: each split on a transaction's path
credits its feature with the change in the node's mean value -- computed by
:mod:`serving.tree_contributions` once it reproduced XGBoost's bit for bit at load (else by
XGBoost); ``exact`` is TreeSHAP (``pred_contribs``), about 100x slower on batches; ``none``
skips them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from fraud_orchestration.modeling.trainer import TrainedModel, read_model_card
from fraud_orchestration.serving.tree_contributions import ApproxContributions
from fraud_orchestration.serving.xgboost_c_api import DensePredictor

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".json", ".ubj")
REASON_METHODS = ("approx", "exact", "none")
FEATURE_POLICIES = ("subset", "exact")


class ModelLoadError(Exception):
    """The model cannot serve; the message says why."""


@dataclass
class ModelSlot:
    version: str
    model_dir: str
    features: list[str]
    columns: np.ndarray
    """Positions of ``features`` among the service's computed features."""
    threshold: float
    iteration_range: tuple[int, int]
    predictor: DensePredictor
    """The booster's scores and contributions (it holds the booster)."""
    explainer: ApproxContributions | None
    """Approximate contributions without XGBoost's per-call cost, where they reproduced
    XGBoost's (else None: XGBoost computes them)."""
    explainer_note: str | None
    card: dict[str, Any]
    reasons_method: str = "approx"
    top_reasons: int = 3
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    smoke: dict[str, Any] = field(default_factory=dict)
    per_call_ms: float = 1.0
    per_row_ms: float = 0.05

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Fraud probabilities for rows of the service's feature matrix."""
        # The columns were picked by name at load time (``columns``), so the booster's
        # feature names are not validated again on every call.
        x = np.ascontiguousarray(values[:, self.columns], dtype=np.float32)
        return self.predictor.scores(x).astype(np.float64).reshape(len(x))

    def reasons(self, values: np.ndarray) -> list[list[dict[str, Any]]]:
        if self.reasons_method == "none" or self.top_reasons <= 0:
            return [[] for _ in range(len(values))]
        selected = values[:, self.columns]
        x = np.ascontiguousarray(selected, dtype=np.float32)
        if self.explainer is not None and self.reasons_method == "approx":
            contributions = self.explainer.contributions(x)
        else:
            contributions = self.predictor.contributions(
                x, approximate=self.reasons_method == "approx"
            )[:, : len(self.features)]
        top = np.argsort(-contributions, axis=1, kind="stable")[:, : self.top_reasons]
        return [
            [
                {
                    "feature": self.features[j],
                    "value": _json_number(selected[row, j]),
                    "contribution": round(float(contributions[row, j]), 6),
                }
                for j in top[row]
            ]
            for row in range(len(x))
        ]

    def estimate_ms(self, rows: int) -> float:
        """Expected time to score ``rows`` with reasons, from the load-time measurements."""
        return self.per_call_ms + self.per_row_ms * rows

    def status(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "model_dir": self.model_dir,
            "features": self.features,
            "decision_threshold": self.threshold,
            "best_iteration": self.iteration_range[1] - 1,
            "trained_at": self.card.get("trained_at"),
            "loaded_at": self.loaded_at,
            "reasons": self.reasons_method,
            "reasons_by": "numba" if self.explainer is not None else "xgboost",
            "reasons_note": self.explainer_note,
            "smoke": self.smoke,
        }


def load_slot(
    model_dir: str | Path,
    version: str,
    computed_features: list[str],
    reasons_method: str = "approx",
    top_reasons: int = 3,
    feature_policy: str = "subset",
) -> ModelSlot:
    """Load and check a model folder (``model.json`` + ``model_card.json``)."""
    if reasons_method not in REASON_METHODS:
        raise ValueError(f"reasons must be one of {REASON_METHODS}, got {reasons_method!r}")
    if feature_policy not in FEATURE_POLICIES:
        raise ValueError(f"feature_policy must be one of {FEATURE_POLICIES}")
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelLoadError(f"{directory} is not a folder")
    try:
        card = read_model_card(directory)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"unreadable model card: {_short(error)}") from None
    model_file = str(card.get("model_file", ""))
    if Path(model_file).name != model_file or not model_file.endswith(MODEL_SUFFIXES):
        raise ModelLoadError(
            f"the card's model_file {model_file!r} is not an XGBoost JSON/UBJ file in the "
            "folder; nothing else is ever loaded (never a pickle)"
        )
    features = card.get("features")
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(name, str) for name in features)
        or len(set(features)) != len(features)
    ):
        raise ModelLoadError("the card's features must be a non-empty list of distinct names")
    if feature_policy == "exact" and set(features) != set(computed_features):
        raise ModelLoadError(
            f"the card lists {len(features)} features; the service computes "
            f"{len(computed_features)} and feature_policy is exact: "
            f"missing {[n for n in computed_features if n not in features]}, "
            f"unknown {[n for n in features if n not in computed_features]}"
        )
    unknown = [name for name in features if name not in computed_features]
    if unknown:
        raise ModelLoadError(
            f"the model needs features the service does not compute: {unknown} "
            f"(the service computes {len(computed_features)} features)"
        )
    try:
        probe = xgb.Booster()
        probe.load_model(str(directory / model_file))
    except Exception as error:  # noqa: BLE001 - XGBoostError, OSError...
        raise ModelLoadError(f"cannot load the model: {_short(error)}") from None
    names = probe.feature_names or []
    if probe.num_features() != len(features) or names != features:
        raise ModelLoadError(
            f"the booster's {probe.num_features()} features differ from the card's "
            f"{len(features)}: the card lacks {[n for n in names if n not in features]}, "
            f"the booster lacks {[n for n in features if n not in names]}"
            + (" (same names, other order)" if sorted(names) == sorted(features) else "")
        )
    try:
        model = TrainedModel.load(directory)
    except Exception as error:  # noqa: BLE001 - JSON, KeyError, TypeError...
        raise ModelLoadError(f"cannot load the model: {_short(error)}") from None
    booster = model.booster
    kind = json.loads(booster.save_config())["learner"]["gradient_booster"]["name"]
    if kind != "gbtree":
        raise ModelLoadError(
            f"a {kind} booster is not served: only gbtree prediction is thread-safe"
        )
    threshold = model.decision_threshold
    if not isinstance(threshold, int | float) or not 0.0 <= float(threshold) <= 1.0:
        raise ModelLoadError(f"decision_threshold {threshold!r} is not within [0, 1]")
    rounds = booster.num_boosted_rounds()
    best = int(model.best_iteration)
    if not 0 <= best < rounds:
        raise ModelLoadError(f"best_iteration {best} is outside the booster's {rounds} rounds")
    if best + 1 < rounds:  # the rounds after the best one are never used: drop them
        booster = booster[: best + 1]  # (same answers, and XGBoost's faster whole-model path)
    booster.set_param({"nthread": 1})
    predictor = DensePredictor(booster, (0, best + 1))
    explainer, note = None, None
    if reasons_method == "approx":
        explainer, note = ApproxContributions.from_booster(booster, (0, best + 1))
        problem = explainer.verify(predictor) if explainer is not None else None
        if problem is not None:
            explainer, note = None, problem
        if note is not None:
            log.warning("model %s: reasons from XGBoost: %s", version, note)
    position = {name: index for index, name in enumerate(computed_features)}
    return ModelSlot(
        version=str(version),
        model_dir=str(directory),
        features=list(features),
        columns=np.array([position[name] for name in features], dtype=np.int64),
        threshold=float(threshold),
        iteration_range=(0, best + 1),
        predictor=predictor,
        explainer=explainer,
        explainer_note=note,
        card=card,
        reasons_method=reasons_method,
        top_reasons=top_reasons,
    )


def smoke_test(slot: ModelSlot, canary: np.ndarray, max_latency_ms: float) -> dict[str, Any]:
    """Score canary rows, check the answers (finite probabilities, one set of reasons per
    row), time 40 single-transaction calls (the median must stay within
    ``max_latency_ms``) and one batch; raise :class:`ModelLoadError` when anything is off.
    Sets the slot's latency estimates."""
    try:
        scores = slot.predict(canary)
        reasons = slot.reasons(canary)
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"smoke test: scoring failed: {_short(error)}") from None
    if scores.shape != (len(canary),) or not np.all(np.isfinite(scores)):
        raise ModelLoadError(f"smoke test: scores are not finite ({scores[:4]})")
    if np.any(scores < 0) or np.any(scores > 1):
        raise ModelLoadError("smoke test: scores are not probabilities in [0, 1]")
    if len(reasons) != len(canary):
        raise ModelLoadError("smoke test: reasons do not match the rows")
    single = []
    for index in range(40):
        row = canary[index % len(canary) : index % len(canary) + 1]
        started = time.perf_counter()
        slot.predict(row)
        slot.reasons(row)
        single.append((time.perf_counter() - started) * 1000)
    batch_rows = np.repeat(canary, max(1, 256 // len(canary)), axis=0)
    started = time.perf_counter()
    slot.predict(batch_rows)
    slot.reasons(batch_rows)
    batch_ms = (time.perf_counter() - started) * 1000
    p50, p99 = (float(v) for v in np.percentile(single, [50, 99]))
    if p50 > max_latency_ms:  # the median: one scheduling hiccup must not refuse a model
        raise ModelLoadError(
            f"smoke test: single-transaction scoring takes {p50:.1f} ms (median), "
            f"over the {max_latency_ms} ms allowed"
        )
    slot.per_call_ms = p50
    slot.per_row_ms = max(batch_ms - p50, 0.0) / len(batch_rows)
    slot.smoke = {
        "canary_rows": len(canary),
        "canary_scores": [round(float(s), 6) for s in scores[:4]],
        "single_p50_ms": round(p50, 3),
        "single_p99_ms": round(p99, 3),
        "batch_rows": len(batch_rows),
        "batch_ms": round(batch_ms, 3),
    }
    return slot.smoke


def _json_number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _short(error: BaseException) -> str:
    text = f"{error.__class__.__name__}: {error}"
    return text if len(text) <= 400 else text[:400] + "..."
