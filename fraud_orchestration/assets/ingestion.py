"""Landing zone → ``raw_transactions`` (valid rows) + the quarantine table (everything else)."""

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from fraud_orchestration.ingestion.raw import IngestedDay, ingest_day
from fraud_orchestration.partitions import daily_partitions, partition_day
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.retries import EXTERNAL_IO
from fraud_orchestration.schema import LANDING_PREFIX

RAW_TABLE = "raw_transactions"
QUARANTINE_TABLE = "quarantine"
REJECTED_SHARE_CHECK = "rejected_share_within_threshold"

landing_events = AssetSpec(
    "landing_events",
    description=(
        "Firehose-style landing zone: gzipped JSON lines under "
        f"`{LANDING_PREFIX}/YYYY/MM/DD/HH/`, written by the simulator, the handbook "
        "adapter or Kinesis Data Firehose. Immutable: nothing downstream deletes it."
    ),
    group_name="ingestion",
    kinds={"s3"},
)


class RawTransactionsConfig(Config):
    max_rejected_share: float = Field(
        default=0.01,
        description="The data-quality check fails when more than this share of landed lines "
        "is quarantined (duplicates excluded: at-least-once delivery produces them).",
    )


@asset(
    partitions_def=daily_partitions,
    deps=[landing_events],
    group_name="ingestion",
    kinds={"parquet", "pandas"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
    check_specs=[
        AssetCheckSpec(
            REJECTED_SHARE_CHECK,
            asset=RAW_TABLE,
            blocking=True,
            partitions_def=daily_partitions,
            description="Great Expectations suite expectations/raw_transactions.json; fails "
            "when the quarantined share of the day exceeds the configured threshold.",
        )
    ],
)
def raw_transactions(
    context: AssetExecutionContext, config: RawTransactionsConfig, lake: Lake
) -> MaterializeResult:
    """The day's landed events parsed, validated and de-duplicated on ``transaction_id``.
    Bad lines go to the ``quarantine`` table with a reason: landed = valid + quarantined +
    duplicates, always. Re-running replaces the day's partition."""
    day = partition_day(context.partition_key)
    keys = lake.landing_keys(day)
    if not keys:
        raise Failure(
            f"No landed files for {day}: nothing under {LANDING_PREFIX}/{day:%Y/%m/%d}/.",
            allow_retries=False,
        )
    context.log.info(f"Parsing {len(keys)} landed files for {day}")
    result = ingest_day(day, [(key, lake.read_landing(key)) for key in keys])
    uri = lake.write_partition(
        RAW_TABLE, day, pa.Table.from_pandas(result.valid, preserve_index=False)
    )
    quarantine_uri = lake.write_partition(
        QUARANTINE_TABLE, day, pa.Table.from_pandas(result.quarantine, preserve_index=False)
    )
    return MaterializeResult(
        metadata=_metadata(result, uri, quarantine_uri),
        check_results=[_rejected_share_check(result, config.max_rejected_share)],
    )


def _metadata(result: IngestedDay, uri: str, quarantine_uri: str) -> dict:
    valid = result.valid
    reasons = result.quarantine["reason"].value_counts()
    return {
        "dagster/row_count": len(valid),
        "landed": result.landed,
        "valid": len(valid),
        "quarantined": result.quarantined,
        "duplicates": result.duplicates,
        "landing_files": result.files,
        "rejected_share": round(result.rejected_share, 6),
        "fraud_rate": round(float(valid["tx_fraud"].mean()), 6) if len(valid) else 0.0,
        "null_rate": round(float(valid.isna().mean().mean()), 6) if len(valid) else 0.0,
        "quarantine_reasons": MetadataValue.md(
            "| reason | rows |\n|---|---|\n"
            + "".join(f"| {reason} | {count} |\n" for reason, count in reasons.items())
        ),
        "path": MetadataValue.path(uri),
        "quarantine_path": MetadataValue.path(quarantine_uri),
    }


def _rejected_share_check(result: IngestedDay, threshold: float) -> AssetCheckResult:
    failing = [item for item in result.expectations if not item["success"]]
    return AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK,
        passed=result.rejected_share <= threshold,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "rejected_share": round(result.rejected_share, 6),
            "threshold": threshold,
            "landed": result.landed,
            "quarantined": result.quarantined,
            "failed_expectations": MetadataValue.json(failing),
        },
        description=(
            f"{result.quarantined} of {result.landed} landed lines quarantined "
            f"({result.rejected_share:.2%}; threshold {threshold:.2%})."
        ),
    )
