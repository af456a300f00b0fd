"""``fraud_model``: an XGBoost challenger, registered, then gated against the champion."""

import tempfile
from dataclasses import asdict
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.modeling.lifecycle import (
    GateRules,
    GateVerdict,
    inline_image,
    judge,
    precision_recall_png,
    test_metrics,
)
from fraud_orchestration.modeling.trainer import TrainedModel, TrainingParams
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.resources.model_registry import ModelRegistry
from fraud_orchestration.resources.trainer import Trainer
from fraud_orchestration.retries import TRAINING
from fraud_orchestration.training.dataset import TrainingSet, load_training_set

GATE_CHECK = "champion_challenger_gate"
METRICS = ("auc_roc", "avg_precision", "card_precision_at_100")


class FraudModelConfig(Config):
    tree_method: Literal["hist", "exact"] = Field(
        default="hist", description="XGBoost split finding; hist is the default (faster)."
    )
    max_depth: int = 6
    learning_rate: float = 0.1
    n_estimators: int = Field(default=400, description="Upper bound; early stopping decides.")
    seed: int = 0
    ap_tolerance: float = Field(default=0.01, description="Gate: allowed AP loss vs champion.")
    cp100_tolerance: float = Field(default=0.01, description="Gate: allowed CP@100 loss.")
    min_auc_roc: float = 0.75
    min_avg_precision: float = 0.30
    min_card_precision_at_100: float = 0.05

    def params(self) -> TrainingParams:
        return TrainingParams(
            tree_method=self.tree_method,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            n_estimators=self.n_estimators,
            seed=self.seed,
        )

    def rules(self) -> GateRules:
        return GateRules(
            ap_tolerance=self.ap_tolerance,
            cp100_tolerance=self.cp100_tolerance,
            min_auc_roc=self.min_auc_roc,
            min_avg_precision=self.min_avg_precision,
            min_card_precision_at_100=self.min_card_precision_at_100,
        )


@asset(
    deps=["training_set"],
    group_name="training",
    kinds={"xgboost"},
    owners=["team:fraud-ml"],
    retry_policy=TRAINING,
    check_specs=[
        AssetCheckSpec(
            GATE_CHECK,
            asset="fraud_model",
            blocking=True,
            description="Champion/challenger gate: both scored on the same test window; the "
            "challenger must not be worse beyond a tolerance on AP and CP@100 and must meet "
            "the floors. A rejected model stays in the registry with its reason.",
        )
    ],
)
def fraud_model(
    context: AssetExecutionContext,
    config: FraudModelConfig,
    lake: Lake,
    model_registry: ModelRegistry,
    trainer: Trainer,
) -> MaterializeResult:
    """An XGBoost model trained on the current training set (early stopping on its
    validation days, then refitted on the whole train window), registered as a new version
    pending approval and approved or rejected by the gate."""
    dataset = load_training_set(lake)
    params = config.params()
    existing = _same_model(model_registry, dataset.manifest["content_hash"], params)
    if existing is not None:
        context.log.info(
            f"v{existing.version} was trained on this training set with these parameters "
            f"already ({existing.status}): nothing new to register."
        )
        return _result(
            existing.version,
            existing.status == "Approved",
            existing.reason,
            {
                "model_version": existing.version,
                **existing.metrics,
                "verdict": str(existing.status),
                "reason": existing.reason or "",
            },
        )
    model = trainer.fit(dataset, FEATURE_NAMES, params)
    context.log.info(f"Trained {model.best_iteration + 1} trees in {model.training_seconds} s")
    metrics = test_metrics(model, dataset.test)
    champion = model_registry.champion()
    champion_metrics = _champion_metrics(model_registry, champion, dataset)
    card = {
        **model.card(metrics, dataset.manifest["windows"]),
        "training_set": dataset.manifest["content_hash"],
        "requested_params": asdict(params),
    }
    with tempfile.TemporaryDirectory() as folder:
        model.save(folder, metrics=metrics, data_windows=dataset.manifest["windows"])
        version = model_registry.register(folder, metrics, card=card).version
    verdict = judge(
        metrics, champion_metrics, champion.version if champion else None, config.rules()
    )
    if verdict.approved:
        model_registry.approve(version, verdict.reason)
    else:
        model_registry.reject(version, verdict.reason)
    context.log.info(f"Model v{version}: {verdict.reason}")
    return _result(
        version,
        verdict.approved,
        verdict.reason,
        _metadata(model, version, verdict, dataset),
        comparison=_comparison_table(verdict),
        champion_version=verdict.champion_version,
    )


def _result(
    version: int,
    approved: bool,
    reason: str | None,
    metadata: dict,
    comparison: str = "",
    champion_version: int | None = None,
) -> MaterializeResult:
    return MaterializeResult(
        metadata=metadata,
        check_results=[
            AssetCheckResult(
                check_name=GATE_CHECK,
                passed=approved,
                description=reason,
                metadata={
                    "model_version": version,
                    "champion_version": champion_version or 0,
                    "verdict": "Approved" if approved else "Rejected",
                    "comparison": MetadataValue.md(comparison or "(decided in an earlier run)"),
                },
            )
        ],
    )


def _same_model(registry: ModelRegistry, training_set: str, params: TrainingParams):
    """A version already trained on ``training_set`` with ``params`` (re-runs register none)."""
    wanted = asdict(params)
    for version in registry.list_versions():
        card = version.card
        if card.get("training_set") == training_set and card.get("requested_params") == wanted:
            return version
    return None


def _champion_metrics(registry: ModelRegistry, champion, dataset: TrainingSet) -> dict | None:
    if champion is None:
        return None
    previous = TrainedModel.load(registry.load_model_dir(champion.version))
    missing = set(previous.features) - set(dataset.test.columns)
    if missing:
        raise ValueError(
            f"Champion v{champion.version} needs features the test window lacks: "
            f"{sorted(missing)}; it cannot be compared on the same data."
        )
    return test_metrics(previous, dataset.test)


def _comparison_table(verdict: GateVerdict) -> str:
    rows = "".join(
        f"| {name} | {verdict.challenger[name]:.4f} | "
        f"{verdict.champion[name] if verdict.champion else float('nan'):.4f} |\n"
        for name in METRICS
    )
    return "| metric (test window) | challenger | champion |\n|---|---|---|\n" + rows


def _metadata(
    model: TrainedModel, version: int, verdict: GateVerdict, dataset: TrainingSet
) -> dict:
    importance = sorted(model.feature_importance.items(), key=lambda item: -item[1])
    png = precision_recall_png(model, dataset.test)
    return {
        "model_version": version,
        "verdict": "Approved" if verdict.approved else "Rejected",
        "reason": verdict.reason,
        **{name: verdict.challenger[name] for name in METRICS},
        "metrics": MetadataValue.md(_comparison_table(verdict)),
        "tree_method": model.params.tree_method,
        "trees": model.best_iteration + 1,
        "decision_threshold": model.decision_threshold,
        "training_seconds": model.training_seconds,
        "training_set": dataset.manifest["content_hash"],
        "feature_importance": MetadataValue.md(
            "| feature | gain |\n|---|---|\n"
            + "".join(f"| {name} | {gain:.2f} |\n" for name, gain in importance)
        ),
        "precision_recall_curve": MetadataValue.md(inline_image(png, "precision-recall curve")),
    }
