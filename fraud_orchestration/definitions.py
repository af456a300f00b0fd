"""The one ``Definitions`` of the code location."""

from __future__ import annotations

from dagster import Definitions

from fraud_orchestration.assets.deployment import (
    endpoint_health,
    fraud_endpoint,
    serving_cost_estimate,
)
from fraud_orchestration.assets.feature_store import offline_feature_store, online_feature_store
from fraud_orchestration.assets.features import transaction_features
from fraud_orchestration.assets.ingestion import landing_events, raw_transactions
from fraud_orchestration.assets.models import fraud_model
from fraud_orchestration.assets.monitoring import drift_report
from fraud_orchestration.assets.scoring import transaction_scores
from fraud_orchestration.assets.training import training_set
from fraud_orchestration.jobs import (
    cost_job,
    daily_ingestion_job,
    deployment_job,
    feature_ingestion_job,
    online_store_job,
    retraining_job,
)
from fraud_orchestration.resources.environments import build_resources
from fraud_orchestration.schedules import daily_ingestion_schedule, nightly_retraining_schedule
from fraud_orchestration.sensors import deployment_sensor, retraining_sensor
from fraud_orchestration.settings import Settings, load_settings


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[
            landing_events,
            raw_transactions,
            transaction_features,
            offline_feature_store,
            online_feature_store,
            training_set,
            fraud_model,
            transaction_scores,
            drift_report,
            fraud_endpoint,
            serving_cost_estimate,
        ],
        asset_checks=[endpoint_health],
        jobs=[
            feature_ingestion_job,
            daily_ingestion_job,
            online_store_job,
            retraining_job,
            deployment_job,
            cost_job,
        ],
        schedules=[daily_ingestion_schedule, nightly_retraining_schedule],
        sensors=[retraining_sensor, deployment_sensor],
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
