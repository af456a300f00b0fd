"""Jobs: what schedules, sensors and the demo launch."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

daily_ingestion_job = define_asset_job(
    "daily_ingestion",
    selection=AssetSelection.assets(
        "raw_transactions", "transaction_features", "offline_feature_store"
    ),
    description="One day through raw → features → offline feature store.",
)

online_store_job = define_asset_job(
    "online_store_refresh",
    selection=AssetSelection.assets("online_feature_store"),
    description="Rebuild the online store from the newest offline days.",
)

retraining_job = define_asset_job(
    "nightly_retraining",
    selection=AssetSelection.assets("training_set", "fraud_model"),
    description="Training set → model → champion/challenger gate.",
)
