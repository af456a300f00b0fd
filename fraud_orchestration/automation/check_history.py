"""Completed asset-check evaluations, oldest first, as plain records."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetCheckEvaluation, AssetCheckKey, AssetKey, DagsterInstance

HISTORY_LIMIT = 10_000


def check_key(asset: str, check: str) -> AssetCheckKey:
    return AssetCheckKey(AssetKey(asset), check)


DATA_QUALITY_CHECKS = [
    check_key("raw_transactions", "rejected_share_within_threshold"),
    check_key("transaction_features", "feature_expectations"),
]
"""The checks on the inputs the live model sees; a failure holds retraining."""
DRIFT_CHECK = check_key("drift_report", "drift_within_thresholds")
HEALTH_CHECK = check_key("fraud_endpoint", "endpoint_health")


@dataclass(frozen=True)
class CheckOutcome:
    record_id: int
    partition: str | None
    passed: bool
    severity: str
    run_id: str
    metadata: dict


def completed_outcomes(
    instance: DagsterInstance, key: AssetCheckKey, after_record_id: int = 0
) -> list[CheckOutcome]:
    """Every completed evaluation of ``key`` with a record id above ``after_record_id``."""
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY_LIMIT)
    outcomes = []
    for record in records:
        evaluation = record.evaluation
        if record.id <= after_record_id or not isinstance(evaluation, AssetCheckEvaluation):
            continue  # planned, or skipped because its step never ran
        outcomes.append(
            CheckOutcome(
                record_id=record.id,
                partition=record.partition,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                run_id=record.run_id,
                metadata={k: v.value for k, v in evaluation.metadata.items()},
            )
        )
    return sorted(outcomes, key=lambda outcome: outcome.record_id)


def latest_by_partition(instance: DagsterInstance, key: AssetCheckKey) -> dict[str, CheckOutcome]:
    """The newest completed evaluation of each partition."""
    latest: dict[str, CheckOutcome] = {}
    for outcome in completed_outcomes(instance, key):
        if outcome.partition is not None:
            latest[outcome.partition] = outcome
    return latest


def failing_partitions(
    instance: DagsterInstance, keys: list[AssetCheckKey], partitions: list[str]
) -> dict[str, list[str]]:
    """The partitions among ``partitions`` whose newest evaluation of any ``keys`` failed."""
    failing: dict[str, list[str]] = {}
    for key in keys:
        latest = latest_by_partition(instance, key)
        for partition in partitions:
            outcome = latest.get(partition)
            if outcome is not None and not outcome.passed:
                failing.setdefault(partition, []).append(key.to_user_string())
    return failing
