"""Jobs: what schedules, sensors and the demo launch."""

from dagster import AssetSelection, define_asset_job

FEATURE_ASSETS = ("raw_transactions", "transaction_features", "offline_feature_store")

feature_ingestion_job = define_asset_job(
    "feature_ingestion",
    selection=AssetSelection.assets(*FEATURE_ASSETS),
    description="One day through raw → features → offline feature store (for backfills and "
    "for the days before a first model exists).",
)

daily_ingestion_job = define_asset_job(
    "daily_ingestion",
    selection=AssetSelection.assets(*FEATURE_ASSETS, "transaction_scores", "drift_report"),
    description="One day through raw → features → offline store → batch scores → drift report. "
    "Scores and drift need an approved model.",
)

online_store_job = define_asset_job(
    "online_store_refresh",
    selection=AssetSelection.assets("online_feature_store"),
    description="Rebuild the online store from the newest offline days.",
)

retraining_job = define_asset_job(
    "nightly_retraining",
    selection=AssetSelection.assets("training_set", "fraud_model", "fraud_endpoint"),
    description="Training set → model → champion/challenger gate → endpoint. A rejected "
    "model stops at the gate (a blocking check); the endpoint serves the champion.",
)

deployment_job = define_asset_job(
    "endpoint_deployment",
    selection=AssetSelection.assets("fraud_endpoint"),
    description="Blue/green deployment of the champion (or, on request, the previous one).",
)

cost_job = define_asset_job(
    "serving_cost",
    selection=AssetSelection.assets("serving_cost_estimate"),
    description="Re-estimate the monthly serving cost from the measured load.",
)
