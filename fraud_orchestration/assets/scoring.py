"""``transaction_scores``: the batch half of hybrid scoring, with the day's investigation list."""

from datetime import date

import pandas as pd
import pyarrow as pa
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from fraud_orchestration.assets.features import FEATURES_TABLE
from fraud_orchestration.modeling.deployed import deployed_model
from fraud_orchestration.modeling.trainer import TrainedModel
from fraud_orchestration.partitions import daily_partitions, partition_day
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.resources.model_registry import ModelRegistry
from fraud_orchestration.retries import EXTERNAL_IO

SCORES_TABLE = "transaction_scores"
INVESTIGATION_CARDS = 100
SCORED_KEYS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
"""The columns a score row keeps beside its score."""


@asset(
    partitions_def=daily_partitions,
    deps=[FEATURES_TABLE, "fraud_endpoint"],
    group_name="serving",
    kinds={"xgboost", "parquet"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
)
def transaction_scores(
    context: AssetExecutionContext, lake: Lake, model_registry: ModelRegistry
) -> MaterializeResult:
    """Every transaction of the day scored by the deployed model version, and the day's
    100 cards most worth investigating (each card's highest score, ranked)."""
    day = partition_day(context.partition_key)
    deployed = deployed_model(context.instance, model_registry)
    model = deployed.model
    scores = score_partition(lake, day, model, deployed.version)
    uri = lake.write_partition(
        SCORES_TABLE, day, pa.Table.from_pandas(scores, preserve_index=False)
    )
    cards = top_cards(scores)
    lake.write_partition(
        "investigation_cards", day, pa.Table.from_pandas(cards, preserve_index=False)
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "model_version": deployed.version,
            "flagged": int(scores["decision"].sum()),
            "decision_threshold": model.decision_threshold,
            "top_cards": MetadataValue.md(_cards_table(cards.head(10))),
            "path": MetadataValue.path(uri),
        }
    )


def score_partition(lake: Lake, day: date, model: TrainedModel, version: int) -> pd.DataFrame:
    """The day's offline features scored by ``model``: one row per transaction with its keys,
    score, model version and decision. Only the keys and the model's features are read, into
    Arrow and from there straight into XGBoost's float32 matrix."""
    features = lake.read_table(FEATURES_TABLE, [day], columns=SCORED_KEYS + model.features)
    if features is None:
        raise Failure(f"no {FEATURES_TABLE} partition for {day}", allow_retries=False)
    scores = features.select(SCORED_KEYS).to_pandas()
    scores["score"] = model.predict(features)
    scores["model_version"] = version
    scores["decision"] = (scores["score"] >= model.decision_threshold).astype("int8")
    return scores


def top_cards(scores: pd.DataFrame, k: int = INVESTIGATION_CARDS) -> pd.DataFrame:
    """Each card's highest score of the day, the ``k`` highest first (ties: lower card id)."""
    per_card = scores.groupby("customer_id", as_index=False).agg(
        score=("score", "max"), transactions=("transaction_id", "count")
    )
    return per_card.sort_values(["score", "customer_id"], ascending=[False, True]).head(k)


def _cards_table(cards: pd.DataFrame) -> str:
    rows = "".join(
        f"| {row.customer_id} | {row.score:.4f} | {row.transactions} |\n"
        for row in cards.itertuples()
    )
    return "| card | max score | transactions |\n|---|---|---|\n" + rows
