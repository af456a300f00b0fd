"""Ingest a small simulated world, retrain twice, score and report drift through Dagster."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from fraud_orchestration.assets import features as features_asset
from fraud_orchestration.assets import training as training_asset
from fraud_orchestration.resources.model_registry import LocalRegistryStore
from fraud_orchestration.simulator import SimulationConfig, simulate

DAYS = 16
START = date(2018, 4, 1)
SMALL_WINDOWS = {
    "ops": {
        "training_set": {
            "config": {
                "train_days": 6,
                "validation_days": 2,
                "delay_days": 3,
                "test_days": 3,
                "allow_partial_lookback": True,
            }
        },
        "fraud_model": {
            "config": {
                "n_estimators": 60,
                "min_auc_roc": 0.5,
                "min_avg_precision": 0.05,
                "min_card_precision_at_100": 0.0,
            }
        },
    }
}


@pytest.fixture
def world(defs, home, instance):
    config = SimulationConfig(
        n_customers=600,
        n_terminals=1200,
        n_days=DAYS,
        seed=3,
        compromised_customers_per_day=2,
        compromised_terminals_per_day=2,
    )
    simulate(config, home)
    job = defs.resolve_job_def("feature_ingestion")
    for day in config.days:
        assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success
    online = defs.resolve_job_def("online_store_refresh")
    assert online.execute_in_process(instance=instance).success
    return config


def _retrain(defs, instance):
    result = defs.resolve_job_def("nightly_retraining").execute_in_process(
        instance=instance, run_config=SMALL_WINDOWS
    )
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["endpoint_health"].passed, evaluations["endpoint_health"].description
    return evaluations["champion_challenger_gate"]


def test_retraining_registers_gates_and_is_idempotent(world, defs, home, instance):
    first = _retrain(defs, instance)
    assert first.passed, first.description
    store = LocalRegistryStore(home / "registry")
    (version,) = store.list_versions()
    assert version.status == "Approved" and store.champion().version == 1
    assert version.card["tree_method"] == "hist"
    assert {"auc_roc", "avg_precision", "card_precision_at_100"} <= set(version.metrics)

    again = _retrain(defs, instance)
    assert again.passed
    assert len(store.list_versions()) == 1, "same training set + params must not register twice"


def test_scores_and_drift_use_the_champion(world, defs, home, instance):
    _retrain(defs, instance)
    last = (START + timedelta(days=DAYS - 1)).isoformat()
    result = defs.resolve_job_def("daily_ingestion").execute_in_process(
        partition_key=last, instance=instance
    )
    assert result.success
    metadata = {
        event.asset_key.path[-1]: event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["transaction_scores"]["model_version"].value == 1
    assert metadata["drift_report"]["model_version"].value == 1
    assert (home / f"lake/investigation_cards/date={last}/data.parquet").is_file()


def test_a_training_set_never_mixes_feature_definitions(world, defs, instance, monkeypatch):
    """After the feature SQL changes, the days not yet recomputed hold the previous
    definition's features: retraining names them and stops, then trains once they are."""
    monkeypatch.setattr(training_asset, "feature_definition_version", lambda: "new-definition")
    refused = defs.resolve_job_def("nightly_retraining").execute_in_process(
        instance=instance, run_config=SMALL_WINDOWS, raise_on_error=False
    )
    assert not refused.success
    failure = refused.failure_data_for_node("training_set").user_failure_data
    assert "computed by another feature definition" in failure.description
    stale = failure.metadata["stale_partitions"].value
    assert len(stale) == 12 and set(stale) <= {day.isoformat() for day in world.days}

    monkeypatch.setattr(features_asset, "feature_definition_version", lambda: "new-definition")
    recompute = defs.resolve_job_def("feature_ingestion")
    for day in stale:
        assert recompute.execute_in_process(partition_key=day, instance=instance).success
    assert _retrain(defs, instance).passed
