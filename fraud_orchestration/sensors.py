"""Sensors that retrain when checks fail and redeploy when the registry changes.

Each sensor keeps a small JSON cursor and derives every ``run_key`` from the trigger itself
(the check record ids), so replaying a tick, or an evaluation interrupted between launching
a run and storing the cursor, never gives two runs for one trigger: Dagster skips a run key
it has already launched. A trigger that arrives during the cool-down or while retraining is
held stays pending in the cursor: it is postponed, never lost.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from fraud_orchestration.automation.check_history import (
    DATA_QUALITY_CHECKS,
    DRIFT_CHECK,
    HEALTH_CHECK,
    CheckOutcome,
    completed_outcomes,
    failing_partitions,
)
from fraud_orchestration.jobs import deployment_job, retraining_job
from fraud_orchestration.resources.model_registry import ModelRegistry

COOLDOWN_SECONDS = 6 * 3600
RETRAINING_SENSOR = "retraining_sensor"
ANSWERED_LOOKBACK = 200
ANSWERED_TAG = "fraud/trigger_records"
"""The check record ids a retraining run answers: the truth a replayed cursor is checked
against, so a trigger already answered is never asked for again under a new run key."""


@dataclass
class RetrainingCursor:
    seen: dict[str, int] = field(default_factory=dict)
    """Newest record id read, per check."""
    pending: list[dict] = field(default_factory=list)
    """Triggers not yet answered by a run request."""
    held: list[str] = field(default_factory=list)
    """Partitions whose data-quality check failed and has not passed since."""
    last_request_at: float = 0.0

    @classmethod
    def load(cls, raw: str | None) -> RetrainingCursor:
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _trigger(reason: str, outcome: CheckOutcome, check: str) -> dict:
    return {
        "reason": reason,
        "check": check,
        "partition": outcome.partition,
        "record_id": outcome.record_id,
    }


def _answered(instance: DagsterInstance, sensor_name: str) -> set[int]:
    """Check record ids already answered by one of the last runs this sensor launched
    (a replayed cursor is at most a few ticks old, so the newest runs are enough)."""
    runs = instance.get_runs(
        filters=RunsFilter(tags={"dagster/sensor_name": sensor_name}), limit=ANSWERED_LOOKBACK
    )
    return {
        int(record_id)
        for run in runs
        for record_id in run.tags.get(ANSWERED_TAG, "").split(",")
        if record_id
    }


def build_retraining_sensor(cooldown_seconds: float = COOLDOWN_SECONDS) -> SensorDefinition:
    @sensor(
        name=RETRAINING_SENSOR,
        job=retraining_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.STOPPED,
        description="Requests retraining when the drift check errors (feature/prediction "
        "drift, or label-based performance below its floor) or a data-quality check on the "
        "live model's inputs fails; a failing partition holds retraining until it passes.",
    )
    def retraining_sensor(context: SensorEvaluationContext):
        cursor = RetrainingCursor.load(context.cursor)
        instance = context.instance
        drift_key = DRIFT_CHECK.to_user_string()
        for outcome in completed_outcomes(instance, DRIFT_CHECK, cursor.seen.get(drift_key, 0)):
            cursor.seen[drift_key] = outcome.record_id
            if not outcome.passed and outcome.severity == "ERROR":
                level = outcome.metadata.get("level", "ERROR")
                reason = "performance" if level == "PERFORMANCE" else "drift"
                cursor.pending.append(_trigger(reason, outcome, drift_key))
        for key in DATA_QUALITY_CHECKS:
            name = key.to_user_string()
            for outcome in completed_outcomes(instance, key, cursor.seen.get(name, 0)):
                cursor.seen[name] = outcome.record_id
                if not outcome.passed and outcome.partition:
                    cursor.pending.append(_trigger("data_quality", outcome, name))
                    cursor.held = sorted(set(cursor.held) | {outcome.partition})
        answered = _answered(instance, RETRAINING_SENSOR)
        cursor.pending = [t for t in cursor.pending if t["record_id"] not in answered]
        if cursor.held:
            cursor.held = sorted(failing_partitions(instance, DATA_QUALITY_CHECKS, cursor.held))
        if not cursor.pending:
            return SensorResult(skip_reason=SkipReason("No failed check."), cursor=cursor.dump())
        if cursor.held:
            return SensorResult(
                skip_reason=SkipReason(
                    f"Retraining held until these partitions pass their data-quality checks: "
                    f"{cursor.held}"
                ),
                cursor=cursor.dump(),
            )
        waited = time.time() - cursor.last_request_at
        if waited < cooldown_seconds:
            return SensorResult(
                skip_reason=SkipReason(
                    f"Cool-down: {cooldown_seconds - waited:.0f} s left; "
                    f"{len(cursor.pending)} trigger(s) pending."
                ),
                cursor=cursor.dump(),
            )
        request = RunRequest(
            run_key="retrain-" + "-".join(str(t["record_id"]) for t in cursor.pending),
            tags={
                "fraud/trigger": ",".join(sorted({t["reason"] for t in cursor.pending})),
                "fraud/check": ",".join(sorted({t["check"] for t in cursor.pending})),
                "fraud/partitions": ",".join(
                    sorted({t["partition"] for t in cursor.pending if t["partition"]})
                ),
                ANSWERED_TAG: ",".join(str(t["record_id"]) for t in cursor.pending),
            },
        )
        cursor.pending = []
        cursor.last_request_at = time.time()
        return SensorResult(run_requests=[request], cursor=cursor.dump())

    return retraining_sensor


retraining_sensor = build_retraining_sensor()


@dataclass
class DeploymentCursor:
    seen_version: int = 0
    """Newest Approved version a redeploy was requested for."""
    health_record: int = 0
    """Newest endpoint health evaluation read."""

    @classmethod
    def load(cls, raw: str | None) -> DeploymentCursor:
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@sensor(
    name="deployment_sensor",
    job=deployment_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Redeploys when the registry has a newly approved version, and redeploys the "
    "previous champion when the endpoint's health check fails.",
)
def deployment_sensor(context: SensorEvaluationContext, model_registry: ModelRegistry):
    cursor = DeploymentCursor.load(context.cursor)
    requests = []
    champion = model_registry.champion()
    if champion is not None and champion.version > cursor.seen_version:
        requests.append(
            RunRequest(
                run_key=f"deploy-v{champion.version}",
                tags={
                    "fraud/trigger": "new_approved_version",
                    "fraud/model_version": str(champion.version),
                },
            )
        )
        cursor.seen_version = champion.version
    for outcome in completed_outcomes(context.instance, HEALTH_CHECK, cursor.health_record):
        cursor.health_record = outcome.record_id
        if not outcome.passed:
            requests.append(
                RunRequest(
                    run_key=f"rollback-{outcome.record_id}",
                    run_config={
                        "ops": {"fraud_endpoint": {"config": {"target": "previous_champion"}}}
                    },
                    tags={
                        "fraud/trigger": "endpoint_health_failed",
                        "fraud/check": HEALTH_CHECK.to_user_string(),
                    },
                )
            )
    if not requests:
        return SensorResult(skip_reason=SkipReason("Nothing to deploy."), cursor=cursor.dump())
    return SensorResult(run_requests=requests, cursor=cursor.dump())
