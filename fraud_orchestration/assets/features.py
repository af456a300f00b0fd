"""``transaction_features``: THE feature SQL over the day plus its 37-day look-back."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from fraud_orchestration.assets.ingestion import RAW_TABLE
from fraud_orchestration.features import FEATURE_NAMES, feature_definition_version
from fraud_orchestration.ingestion.validate import run_suite
from fraud_orchestration.partitions import (
    LOOKBACK_DAYS,
    daily_partitions,
    day_bounds_seconds,
    lookback_days,
    partition_day,
)
from fraud_orchestration.resources.feature_engine import FeatureEngine
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.retries import EXTERNAL_IO

FEATURES_TABLE = "transaction_features"
FEATURE_SUITE_CHECK = "feature_expectations"
FEATURE_VERSION = "feature_definition_version"
"""The metadata key of the feature definition (SQL text hash) a materialization computed with."""


@asset(
    partitions_def=daily_partitions,
    deps=[
        AssetDep(
            RAW_TABLE,
            partition_mapping=TimeWindowPartitionMapping(
                start_offset=-LOOKBACK_DAYS, allow_nonexistent_upstream_partitions=True
            ),
        )
    ],
    group_name="features",
    kinds={"duckdb", "sql"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
    check_specs=[
        AssetCheckSpec(
            FEATURE_SUITE_CHECK,
            asset=FEATURES_TABLE,
            blocking=True,
            partitions_def=daily_partitions,
            description="Great Expectations suite expectations/transaction_features.json: "
            "no nulls, unique ids, flags in {0,1}, counts >= 1, risk within [0, 1].",
        )
    ],
)
def transaction_features(
    context: AssetExecutionContext, lake: Lake, feature_engine: FeatureEngine
) -> MaterializeResult:
    """The feature definitions (``fraud_orchestration/features/``) computed for the day's
    transactions from the day plus a 37-day look-back (30-day windows behind a 7-day label
    delay). A missing look-back day (before the first partition) just shortens the history."""
    day = partition_day(context.partition_key)
    sources = lake.existing_uris(RAW_TABLE, lookback_days(day))
    start, end = day_bounds_seconds(day)
    context.log.info(
        f"Building features for {day} with {type(feature_engine).__name__} "
        f"from {len(sources)} raw partitions"
    )
    build = feature_engine.build(sources, start, end, lake.table_uri(FEATURES_TABLE, day))
    features = lake.read_partitions(FEATURES_TABLE, [day])
    outcome = run_suite(
        FEATURES_TABLE,
        features,
        {"partition_start_seconds": start, "partition_last_second": end - 1},
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": build.rows,
            "lookback_partitions": len(sources),
            "feature_count": len(FEATURE_NAMES),
            FEATURE_VERSION: feature_definition_version(),
            "engine": type(feature_engine).__name__,
            "feature_means": MetadataValue.md(_means_table(features)),
            "path": MetadataValue.path(build.uri),
        },
        check_results=[
            AssetCheckResult(
                check_name=FEATURE_SUITE_CHECK,
                passed=outcome.success,
                metadata={
                    "failed_expectations": MetadataValue.json(
                        [item for item in outcome.summary if not item["success"]]
                    ),
                    "expectations": len(outcome.summary),
                },
            )
        ],
    )


def _means_table(features: pd.DataFrame) -> str:
    rows = "".join(
        f"| {name} | {features[name].mean():.4f} | {features[name].max():.4f} |\n"
        for name in FEATURE_NAMES
    )
    return "| feature | mean | max |\n|---|---|---|\n" + rows
