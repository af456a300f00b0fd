"""``drift_report``: the day's features and scores against the deployed model's reference."""

from datetime import timedelta

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from fraud_orchestration.assets.features import FEATURES_TABLE
from fraud_orchestration.modeling.deployed import deployed_model
from fraud_orchestration.modeling.lifecycle import inline_image
from fraud_orchestration.modeling.metrics import evaluate
from fraud_orchestration.monitoring.drift import (
    ERROR_PSI,
    WARN_PSI,
    compare,
    drift_png,
    feature_drift,
    severity,
)
from fraud_orchestration.partitions import daily_partitions, partition_day
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.resources.model_registry import ModelRegistry
from fraud_orchestration.retries import EXTERNAL_IO
from fraud_orchestration.training.dataset import load_training_set

DRIFT_CHECK = "drift_within_thresholds"
LABEL_DELAY_DAYS = 7


class DriftConfig(Config):
    warn_psi: float = Field(default=WARN_PSI, description="WARN above this PSI (Siddiqi 2006).")
    error_psi: float = Field(default=ERROR_PSI, description="ERROR above this PSI.")
    min_avg_precision: float = Field(
        default=0.30, description="Label-based floor on the matured day's average precision."
    )


@asset(
    partitions_def=daily_partitions,
    deps=[FEATURES_TABLE, "fraud_endpoint"],
    group_name="monitoring",
    kinds={"pandas", "xgboost"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
    check_specs=[
        AssetCheckSpec(
            DRIFT_CHECK,
            asset="drift_report",
            partitions_def=daily_partitions,
            description="WARN when a feature's or the score's PSI exceeds the lower threshold, "
            "ERROR above the higher one, or when the matured day's AP is below the floor.",
        )
    ],
)
def drift_report(
    context: AssetExecutionContext,
    config: DriftConfig,
    lake: Lake,
    model_registry: ModelRegistry,
) -> MaterializeResult:
    """Per-feature drift (PSI and Jensen-Shannon distance) of the day against the deployed
    model's training reference, prediction drift (score distribution), fraud-rate drift, and
    AP / CP@100 on the day whose labels have matured (``label delay`` days earlier)."""
    day = partition_day(context.partition_key)
    deployed = deployed_model(context.instance, model_registry)
    model, version = deployed.model, deployed.version
    reference = load_training_set(lake, deployed.training_set).train
    current = lake.read_partitions(FEATURES_TABLE, [day])
    if current.empty:
        raise Failure(
            f"No features for {day}: materialize transaction_features first.",
            allow_retries=False,
        )
    drifts = feature_drift(reference, current, model.features)
    prediction = compare("score", model.predict(reference), model.predict(current))
    matured_day = day - timedelta(days=LABEL_DELAY_DAYS)
    matured = lake.read_partitions(FEATURES_TABLE, [matured_day])
    performance = _performance(model, matured)
    worst = max([*drifts, prediction], key=lambda d: d.psi)
    level = severity(worst.psi, config.warn_psi, config.error_psi)
    below_floor = performance and performance["avg_precision"] < config.min_avg_precision
    passed = level == "OK" and not below_floor
    png = drift_png(drifts, prediction, config.warn_psi, config.error_psi)
    metadata = {
        "model_version": version,
        "rows": len(current),
        "worst_feature": worst.name,
        "worst_psi": worst.psi,
        "prediction_psi": prediction.psi,
        "prediction_js_distance": prediction.js_distance,
        "fraud_rate": round(float(current["tx_fraud"].mean()), 6),
        "reference_fraud_rate": round(float(reference["tx_fraud"].mean()), 6),
        "matured_day": matured_day.isoformat(),
        "matured_avg_precision": performance.get("avg_precision", float("nan")),
        "matured_card_precision_at_100": performance.get("card_precision_at_100", float("nan")),
        "drift": MetadataValue.md(_drift_table([*drifts, prediction])),
        "drift_plot": MetadataValue.md(inline_image(png, "drift")),
    }
    return MaterializeResult(
        metadata=metadata,
        check_results=[
            AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=passed,
                severity=AssetCheckSeverity.WARN
                if level != "ERROR" and not below_floor
                else AssetCheckSeverity.ERROR,
                description=_verdict(level, worst, performance, config),
                metadata={
                    "level": "PERFORMANCE" if below_floor and level == "OK" else level,
                    "worst_feature": worst.name,
                    "worst_psi": worst.psi,
                    "prediction_psi": prediction.psi,
                    "matured_avg_precision": performance.get("avg_precision", float("nan")),
                    "model_version": version,
                },
            )
        ],
    )


def _performance(model, matured: pd.DataFrame) -> dict:
    if matured.empty or matured["tx_fraud"].nunique() < 2:
        return {}
    return evaluate(matured.assign(score=model.predict(matured)))


def _verdict(level: str, worst, performance: dict, config: DriftConfig) -> str:
    text = f"{level}: worst PSI {worst.psi:.3f} on {worst.name}"
    if performance:
        text += f"; matured-day AP {performance['avg_precision']:.3f}"
        if performance["avg_precision"] < config.min_avg_precision:
            text += f" below the floor {config.min_avg_precision}"
    return text


def _drift_table(drifts) -> str:
    rows = "".join(
        f"| {d.name} | {d.psi:.4f} | {d.js_distance:.4f} | {d.reference_mean:.4g} | "
        f"{d.current_mean:.4g} |\n"
        for d in drifts
    )
    return (
        "| feature | PSI | JS distance | reference mean | day mean |\n|---|---|---|---|---|\n"
        + rows
    )
