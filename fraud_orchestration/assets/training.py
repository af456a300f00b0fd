"""``training_set``: point-in-time windows read from the offline feature store."""

from datetime import date, timedelta

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from fraud_orchestration.assets.feature_store import OFFLINE_STORE, UNRECORDED
from fraud_orchestration.assets.features import FEATURE_VERSION
from fraud_orchestration.automation.check_history import DATA_QUALITY_CHECKS, failing_partitions
from fraud_orchestration.automation.materializations import latest_metadata
from fraud_orchestration.features import feature_definition_version
from fraud_orchestration.partitions import LOOKBACK_DAYS
from fraud_orchestration.resources.feature_store import FeatureStore
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.retries import EXTERNAL_IO
from fraud_orchestration.training.dataset import build_training_set, store_training_set
from fraud_orchestration.training.windows import TrainingWindows


class TrainingSetConfig(Config):
    cutoff: str = Field(
        default="",
        description="ISO date the test window ends before (exclusive); empty means the day "
        "after the newest day in the offline feature store.",
    )
    train_days: int = Field(default=14, description="Days whose labels train the model.")
    validation_days: int = Field(
        default=3, description="The train window's last days, held out for early stopping."
    )
    delay_days: int = Field(default=7, description="Label delay: a gap nothing is learnt from.")
    test_days: int = Field(default=7, description="Days the metrics and the gate are scored on.")
    allow_partial_lookback: bool = Field(
        default=False,
        description="Allow a train window inside the first 37 days of data, whose features "
        "are computed on an incomplete look-back (30-day counts still growing).",
    )


@asset(
    deps=[OFFLINE_STORE],
    group_name="training",
    kinds={"parquet", "pandas"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
)
def training_set(
    context: AssetExecutionContext,
    config: TrainingSetConfig,
    lake: Lake,
    feature_store: FeatureStore,
) -> MaterializeResult:
    """Chronological train / delay / test windows before a cutoff, read point-in-time from
    the offline feature store: features are what was known at each transaction's time,
    labels come only from the train window, the delay window is never learnt from, and test
    days drop the cards already known to be compromised (the handbook protocol)."""
    available = feature_store.offline_days()
    if not available:
        raise Failure(
            "The offline feature store is empty: run the daily ingestion first.",
            allow_retries=False,
        )
    cutoff = date.fromisoformat(config.cutoff) if config.cutoff else max(available) + timedelta(1)
    windows = TrainingWindows.ending_at(
        cutoff,
        train_days=config.train_days,
        delay_days=config.delay_days,
        test_days=config.test_days,
        validation_days=config.validation_days,
    )
    warm = min(available) + timedelta(days=LOOKBACK_DAYS)
    if windows.train.start < warm and not config.allow_partial_lookback:
        raise Failure(
            f"The train window starts {windows.train.start}, inside the look-back warm-up: "
            f"features before {warm} are computed on fewer than {LOOKBACK_DAYS} days of "
            "history, so a model would learn a distribution it never sees again. Ingest more "
            "history, move the cutoff, or set allow_partial_lookback.",
            allow_retries=False,
        )
    missing = sorted(set(windows.days_needed) - set(available))
    if missing:
        raise Failure(
            f"The offline feature store lacks {len(missing)} day(s) the windows need "
            f"(first {missing[0]}, last {missing[-1]}); materialize them or move the cutoff.",
            allow_retries=False,
        )
    failing = failing_partitions(
        context.instance, DATA_QUALITY_CHECKS, [day.isoformat() for day in windows.days_needed]
    )
    if failing:
        raise Failure(
            "Retraining held: these partitions failed their data-quality checks and must be "
            f"repaired (re-landed and re-run) first: {failing}",
            metadata={"failing_partitions": sorted(failing)},
            allow_retries=False,
        )
    current = feature_definition_version()
    stale = _days_of_other_definitions(context, windows, current)
    if stale:
        raise Failure(
            f"The offline feature store holds {len(stale)} day(s) computed by another feature "
            f"definition than the current one ({current}): {stale}. A training set must not mix "
            "definitions: re-run feature_ingestion for these days (a backfill), then retrain.",
            metadata={"stale_partitions": sorted(stale)},
            allow_retries=False,
        )
    records = feature_store.read_offline(windows.days_needed)
    dataset = build_training_set(records, windows, current)
    version = store_training_set(lake, dataset)
    counts = dataset.manifest["counts"]
    context.log.info(f"Training set {version}: {counts}")
    return MaterializeResult(
        metadata={
            "version": version,
            "dagster/row_count": counts["train"]["rows"],
            "train_rows": counts["train"]["rows"],
            "train_frauds": counts["train"]["frauds"],
            "train_fraud_rate": counts["train"]["fraud_rate"],
            "test_rows": counts["test"]["rows"],
            "test_frauds": counts["test"]["frauds"],
            "windows": MetadataValue.md(_windows_table(windows)),
            FEATURE_VERSION: dataset.manifest["feature_definition_version"],
            "features": MetadataValue.json(dataset.manifest["features"]),
            "manifest": MetadataValue.json(dataset.manifest),
        }
    )


def _days_of_other_definitions(
    context: AssetExecutionContext, windows: TrainingWindows, current: str
) -> dict[str, str]:
    """Needed day -> the feature definition its offline-store records were computed by, for
    the days not computed by ``current`` (days stored outside Dagster have no record)."""
    days = [day.isoformat() for day in windows.days_needed]
    stored = latest_metadata(context.instance, OFFLINE_STORE, days)
    versions = {day: metadata.get(FEATURE_VERSION, UNRECORDED) for day, metadata in stored.items()}
    return {day: version for day, version in versions.items() if version != current}


def _windows_table(windows: TrainingWindows) -> str:
    rows = "".join(
        f"| {name} | {bounds['start']} | {bounds['end']} |\n"
        for name, bounds in windows.as_dict().items()
    )
    return "| window | start | end (exclusive) |\n|---|---|---|\n" + rows
