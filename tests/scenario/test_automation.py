"""Schedules and sensors driven tick by tick on a DagsterInstance in a temporary folder.

One simulated world: 50 normal days (a champion is trained and deployed), 2 more normal
days (a drift-free period: the sensor launches nothing), then drift from day 52 (amounts ×3
and a new card-testing pattern): the drift check errors, the sensor asks for exactly one
retraining, the gate approves the challenger and the endpoint serves it. Then a corrupted
partition holds retraining until clean data is re-landed and the partition passes.

The test plays the daemon: it evaluates the sensor, then executes the run it requested
(with the run key and tags the sensor set, and small training windows as run config).
"""

from __future__ import annotations

import pytest
from dagster import SensorResult, build_sensor_context

from fraud_orchestration.automation.check_history import DRIFT_CHECK
from fraud_orchestration.resources.model_registry import LocalRegistryStore
from fraud_orchestration.sensors import build_retraining_sensor, deployment_sensor
from fraud_orchestration.simulator import (
    BadRecordConfig,
    SimulationConfig,
    clear_day,
    simulate,
    simulate_day,
)

NORMAL_DAYS = 50
CONFIG = SimulationConfig(
    n_customers=800,
    n_terminals=1600,
    n_days=NORMAL_DAYS + 4,
    seed=11,
    drift_from_day=NORMAL_DAYS + 2,
    drift_amount_scale=3.0,
    drift_new_pattern=True,
)
RETRAINING = {
    "ops": {
        "training_set": {
            "config": {"train_days": 6, "validation_days": 2, "delay_days": 3, "test_days": 3}
        },
        "fraud_model": {
            "config": {
                "n_estimators": 80,
                "ap_tolerance": 0.05,
                "cp100_tolerance": 0.05,
                "min_auc_roc": 0.6,
                "min_avg_precision": 0.1,
                "min_card_precision_at_100": 0.0,
            }
        },
    }
}


def _ingest(defs, instance, job: str, days) -> None:
    for day in days:
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False
        )
        assert result.success, day


def _tick(sensor, instance, cursor, **resources) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources or None)
    return sensor(context)


def _launch(defs, instance, request):
    return defs.resolve_job_def("nightly_retraining").execute_in_process(
        instance=instance,
        run_config=RETRAINING,
        tags={**request.tags, "dagster/run_key": request.run_key},
    )


@pytest.mark.scenario
def test_drift_triggers_exactly_one_retraining_and_a_redeploy(defs, home, instance):
    simulate(CONFIG, home)
    days = CONFIG.days
    _ingest(defs, instance, "feature_ingestion", days[:NORMAL_DAYS])
    defs.resolve_job_def("online_store_refresh").execute_in_process(instance=instance)
    first = defs.resolve_job_def("nightly_retraining").execute_in_process(
        instance=instance, run_config=RETRAINING
    )
    assert first.success
    registry = LocalRegistryStore(home / "registry")
    endpoint = defs.resources["endpoint"]
    assert registry.champion().version == 1 and endpoint.deployed_version() == 1

    sensor = build_retraining_sensor(cooldown_seconds=0)
    cursor = _tick(sensor, instance, None).cursor

    # a drift-free period launches nothing
    _ingest(defs, instance, "daily_ingestion", days[NORMAL_DAYS : NORMAL_DAYS + 2])
    quiet = _tick(sensor, instance, cursor)
    assert not quiet.run_requests, quiet.skip_reason
    cursor = quiet.cursor

    # drift: the check errors, the sensor asks for exactly one retraining
    _ingest(defs, instance, "daily_ingestion", days[NORMAL_DAYS + 2 :])
    failed = [
        e
        for e in instance.event_log_storage.get_asset_check_execution_history(DRIFT_CHECK, limit=10)
        if e.evaluation is not None and not e.evaluation.passed
    ]
    assert failed, "the drift check should fail on drifted days"
    drifted = _tick(sensor, instance, cursor)
    (request,) = drifted.run_requests
    assert request.tags["fraud/trigger"] == "drift"
    assert request.tags["fraud/check"] == "drift_report:drift_within_thresholds"
    replayed = _tick(sensor, instance, cursor)
    assert [r.run_key for r in replayed.run_requests] == [request.run_key]
    assert not _tick(sensor, instance, drifted.cursor).run_requests

    run = _launch(defs, instance, request)
    assert run.success
    gate = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert gate["champion_challenger_gate"].passed, gate["champion_challenger_gate"].description
    assert registry.champion().version == 2
    assert endpoint.deployed_version() == 2

    # the deployment sensor asks to deploy the new champion (a no-op now that v2 serves)
    deploy = _tick(
        deployment_sensor, instance, None, model_registry=defs.resources["model_registry"]
    )
    assert [r.run_key for r in deploy.run_requests] == ["deploy-v2"]


@pytest.mark.scenario
def test_a_corrupt_partition_holds_retraining_until_repaired(defs, home, instance):
    quiet = SimulationConfig(**{**CONFIG.__dict__, "drift_from_day": None})
    simulate(quiet, home)
    days = quiet.days
    _ingest(defs, instance, "feature_ingestion", days[:NORMAL_DAYS])
    sensor = build_retraining_sensor(cooldown_seconds=0)
    cursor = _tick(sensor, instance, None).cursor

    corrupt = days[NORMAL_DAYS - 3]
    clear_day(home, corrupt)
    simulate_day(
        quiet, corrupt, home, bad=BadRecordConfig(malformed_json=300, negative_amounts=300)
    )
    result = defs.resolve_job_def("feature_ingestion").execute_in_process(
        partition_key=corrupt.isoformat(), instance=instance, raise_on_error=False
    )
    assert any(not e.passed for e in result.get_asset_check_evaluations())

    held = _tick(sensor, instance, cursor)
    assert not held.run_requests
    assert corrupt.isoformat() in str(held.skip_reason)
    blocked = defs.resolve_job_def("nightly_retraining").execute_in_process(
        instance=instance, run_config=RETRAINING, raise_on_error=False
    )
    assert not blocked.success, "a retraining must not read a partition that failed its checks"

    clear_day(home, corrupt)
    simulate_day(quiet, corrupt, home)
    _ingest(defs, instance, "feature_ingestion", [corrupt])
    released = _tick(sensor, instance, held.cursor)
    (request,) = released.run_requests
    assert request.tags["fraud/trigger"] == "data_quality"
    assert corrupt.isoformat() in request.tags["fraud/partitions"]
    assert _launch(defs, instance, request).success
