"""The offline feature store (history for training) and the online store (state for serving)."""

from datetime import timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from fraud_orchestration.assets.features import FEATURE_VERSION, FEATURES_TABLE
from fraud_orchestration.automation.materializations import latest_metadata
from fraud_orchestration.partitions import daily_partitions, day_bounds_seconds, partition_day
from fraud_orchestration.resources.feature_store import (
    CARD_HISTORY_DAYS,
    TERMINAL_HISTORY_DAYS,
    FeatureStore,
)
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.retries import EXTERNAL_IO

OFFLINE_STORE = "offline_feature_store"
UNRECORDED = "unrecorded"
"""The feature definition of a day whose features no materialization recorded one for."""


@asset(
    partitions_def=daily_partitions,
    deps=[FEATURES_TABLE],
    group_name="feature_store",
    kinds={"parquet"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
)
def offline_feature_store(
    context: AssetExecutionContext, lake: Lake, feature_store: FeatureStore
) -> MaterializeResult:
    """The feature group's history: record id ``transaction_id``, ``event_time``,
    ``write_time`` and every feature plus the label. Re-running a day replaces its records.
    Records which feature definition computed the day (``training_set`` refuses a mix)."""
    day = partition_day(context.partition_key)
    features = lake.read_partitions(FEATURES_TABLE, [day])
    uri = feature_store.write_offline(day, features)
    computed = latest_metadata(context.instance, FEATURES_TABLE, [context.partition_key])
    version = computed.get(context.partition_key, {}).get(FEATURE_VERSION, UNRECORDED)
    return MaterializeResult(
        metadata={
            FEATURE_VERSION: version,
            "dagster/row_count": len(features),
            "feature_group": feature_store.feature_group,
            "fraud_rate": round(float(features["tx_fraud"].mean()), 6) if len(features) else 0.0,
            "path": MetadataValue.path(uri),
        }
    )


@asset(
    deps=[OFFLINE_STORE],
    group_name="feature_store",
    kinds={"sqlite"},
    automation_condition=AutomationCondition.eager(),
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
)
def online_feature_store(
    context: AssetExecutionContext, feature_store: FeatureStore
) -> MaterializeResult:
    """What serving needs, as of the newest day in the offline store: every card's
    transactions of the last 30 days and every terminal's of the last 37 days."""
    materialized = context.instance.get_materialized_partitions(AssetKey(OFFLINE_STORE))
    if not materialized:
        raise Failure(
            "The offline feature store has no partitions yet: materialize it first.",
            allow_retries=False,
        )
    newest = max(partition_day(key) for key in materialized)
    days = [newest - timedelta(days=offset) for offset in range(TERMINAL_HISTORY_DAYS)]
    records = feature_store.read_offline(sorted(days))
    as_of = day_bounds_seconds(newest)[1]
    cards, terminals = online_histories(records, as_of)
    counts = feature_store.publish_online(cards, terminals, as_of)
    return MaterializeResult(
        metadata={
            "as_of_day": newest.isoformat(),
            "cards": counts["cards"],
            "terminals": counts["terminals"],
            "card_history_rows": len(cards),
            "terminal_history_rows": len(terminals),
        }
    )


def online_histories(
    records: pd.DataFrame, as_of_seconds: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``records`` that serving's windows can still reach at ``as_of_seconds``."""
    card_from = as_of_seconds - CARD_HISTORY_DAYS * 86_400
    terminal_from = as_of_seconds - TERMINAL_HISTORY_DAYS * 86_400
    columns = ["transaction_id", "tx_time_seconds", "customer_id", "terminal_id", "tx_amount"]
    cards = records.loc[records["tx_time_seconds"] >= card_from, columns]
    terminals = records.loc[records["tx_time_seconds"] >= terminal_from, columns + ["tx_fraud"]]
    return cards.reset_index(drop=True), terminals.reset_index(drop=True)
